"""AnalogNet-KWS and AnalogNet-VWW: the two always-on networks, shaped for one resident PCM array.

Design rules (AnalogNets, paper-targets section 1; reasoning and layer tables in docs/analognets.md):
- standard convolutions only: a depthwise k x k conv is a block-diagonal matrix that uses 1/C of
  its cells and sums only k*k products per column, a small signal against the fixed ADC gain and
  the output noise; a standard conv sums k*k*C_in products per column;
- every layer is a rectangle rows = k_h*k_w*C_in <= cfg.rows, cols = C_out, and all of them are
  resident on the one array at once (`analog_footprint` checks the packing);
- the array runs one MVM per output position and the co-simulation budget is in MVMs, so both nets
  downsample at once (stride-2 first convolution, pooling) and spend their parameters on the small
  feature maps near the end;
- flat `nn.Sequential` of Conv2d(no bias)/BatchNorm2d/ReLU/MaxPool2d/AdaptiveAvgPool2d(1)/Flatten/
  Linear only: the modules `firmware.compiler` lowers. Batch norm folds into per-channel digital
  post-processing, never into the conductances.
"""
from __future__ import annotations

from torch import nn

from .footprint import Footprint, FootprintError, LayerFootprint, analog_footprint

__all__ = ["analognet_kws", "analognet_vww", "analog_footprint", "Footprint",
           "FootprintError", "LayerFootprint", "KWS_INPUT_SHAPE", "KWS_CLASS_NAMES", "VWW_INPUT_SHAPE",
           "VWW_CLASS_NAMES"]

# 49 MFCC frames (1 s, 40 ms window, 20 ms hop) x 10 coefficients, as the KWS front end makes them.
KWS_INPUT_SHAPE = (1, 49, 10)
# TF speech_commands order; must equal aoncim.model.kws_data.CLASS_NAMES (kept literal so the net
# does not import the data pipeline).
KWS_CLASS_NAMES = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
                   "stop", "go")
# Decision: 64 x 64 grayscale. The 96 x 96 RGB of MLPerf Tiny would be 27 648 input words (6.75x the
# SRAM) and, through a stride-2 stem, 2304 stem MVMs instead of 1024 (see docs/analognets.md).
VWW_INPUT_SHAPE = (1, 64, 64)
VWW_CLASS_NAMES = ("no_person", "person")


def _conv(c_in: int, c_out: int, kernel: int | tuple[int, int] = 3, stride: int = 1,
          pad: int | None = None) -> list[nn.Module]:
    """Conv -> BatchNorm -> ReLU; the conv has no bias because batch norm supplies it."""
    if pad is None:
        pad = kernel // 2 if isinstance(kernel, int) else 0
    return [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU()]


def _named(net: nn.Sequential, input_shape: tuple[int, int, int], class_names: tuple[str, ...]) -> nn.Sequential:
    net.input_shape = input_shape
    net.class_names = class_names
    return net


def analognet_kws(n_classes: int = len(KWS_CLASS_NAMES)) -> nn.Sequential:
    """AnalogNet-KWS, ~180 K parameters, input (1, 49, 10) MFCC, 12 classes.

    A (10, 4) stride-2 stem over time x frequency (40 rows: one MFCC patch per column sum) gives a
    21 x 5 map; four standard 3 x 3 convs of 64-72 channels (576-648 rows, most of the array's
    height) run on it; global average pooling and one FC layer classify. 526 MVMs per inference.
    """
    if n_classes != len(KWS_CLASS_NAMES):
        names = tuple(f"class_{i}" for i in range(n_classes))
    else:
        names = KWS_CLASS_NAMES
    net = nn.Sequential(
        *_conv(1, 64, (10, 4), stride=2, pad=1),  # 49x10 -> 21x5
        *_conv(64, 72),
        *_conv(72, 72),
        *_conv(72, 72),
        *_conv(72, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, n_classes),
    )
    return _named(net, KWS_INPUT_SHAPE, names)


def analognet_vww() -> nn.Sequential:
    """AnalogNet-VWW, ~227 K parameters, input (1, 64, 64) grayscale, 2 classes (no_person, person).

    A 5 x 5 stride-2 stem (25 rows rather than a 3 x 3's 9: more signal per column against the fixed
    ADC gain, for the price of 16 load cycles) and a 2 x 2 max pool bring 64 x 64 to 16 x 16 before
    the second conv; three stages of two 3 x 3 convs (32, 64, 96-120 channels) at 16, 8 and 4 pixels
    follow, then global average pooling and FC. 1697 MVMs per inference, 60 % of them in the stem.
    """
    net = nn.Sequential(
        *_conv(1, 8, 5, stride=2),   # 64x64 -> 32x32
        nn.MaxPool2d(2),             # -> 16x16
        *_conv(8, 32),
        *_conv(32, 32),
        nn.MaxPool2d(2),             # -> 8x8
        *_conv(32, 64),
        *_conv(64, 64),
        nn.MaxPool2d(2),             # -> 4x4
        *_conv(64, 96),
        *_conv(96, 120),             # 864 rows x 120 columns
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(120, len(VWW_CLASS_NAMES)),
    )
    return _named(net, VWW_INPUT_SHAPE, VWW_CLASS_NAMES)


def _report() -> None:
    """Print both layer tables on the default chip (used to write docs/analognets.md)."""
    from aoncim.config import DEFAULT_CONFIG

    for title, make in (("AnalogNet-KWS", analognet_kws), ("AnalogNet-VWW", analognet_vww)):
        net = make()
        fp = analog_footprint(net, net.input_shape, DEFAULT_CONFIG)
        print(f"## {title}: input {net.input_shape}, {len(net.class_names)} classes\n\n{fp.table()}\n")


if __name__ == "__main__":
    _report()
