"""Names shared by the KWS data loaders (kws_data.py) and the synthetic-set generator
(kws_synth.py): the 12 classes in the TF speech_commands order, the splits and the shipped file.
Its own module so that kws_synth does not import kws_data, which runs kws_synth for its CLI."""

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
CLASS_NAMES = (SILENCE, UNKNOWN) + KEYWORDS
SPLITS = ("train", "val", "test")
SYNTH_FILE = "kws_synth.npz"
