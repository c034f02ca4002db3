"""Fixed cycle counts of the layer-serial schedule shared by the RTL sequencer (hw/sequencer.py)
and the analytical cycle model (perf/cycles.py), so the model does not import the RTL.

They are properties of the sequencer's state machine, not configurable hardware numbers (hence
not in AonCimConfig): changing one means changing the FSM.
"""

LAYER_START = 3  # FETCH, DECODE, CHECK
LAYER_END = 3    # the last post-processed value lands in its memory before the next layer reads
