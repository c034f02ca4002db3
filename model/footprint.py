"""What a sequential network costs on the AON-CiM chip, and whether it fits, before compiling it.

`analog_footprint(net, input_shape, cfg)` lowers a flat network with the compiler's own lowering
(`firmware.compiler.lower_network`: Conv2d/Linear -> one MVM layer on the array; BatchNorm and ReLU
fold into the layer before; pooling -> a digital layer; Flatten, Dropout and Identity are free) and reports, per chip layer: the array rectangle
(rows = k_h*k_w*C_in, cols = C_out), its placement, the output tensor H x W x C, the parameter
count and the number of MVMs (one per output position). It raises `FootprintError`, one line naming
the layer, for anything the chip described by `cfg` cannot hold: a module type the compiler does not
lower, a rectangle larger than the array, a set of rectangles that does not pack resident (every
layer stays on the array: AON-CiM never reloads weights), too many layers or post-processing
parameters.

Activation SRAM is reported (the largest tensor, input included, in words) and checked only with
`check_sram=True`, because the SRAM depth is the one resource we may still ask to grow.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import CompileError, lower_network
from aoncim.firmware.placement import PlacementError, place_rectangles
from aoncim.program import Op


class FootprintError(ValueError):
    """The network cannot run on the configured chip; the message names the layer and the fix."""


@dataclass(frozen=True)
class LayerFootprint:
    """One chip layer: an MVM on the array (conv/linear) or a digital pooling step."""

    name: str                        # "<leaf index>:<module type>", as firmware.compiler names layers
    kind: str                        # "conv" | "linear" | "maxpool" | "avgpool", for reports
    op: Op
    kernel: tuple[int, int]
    stride: int
    pad: tuple[int, int]             # (pad_h, pad_w): above and below, beside
    in_shape: tuple[int, int, int]   # H, W, C (activations are stored HWC)
    out_shape: tuple[int, int, int]
    rows: int = 0                    # array rows k_h*k_w*C_in; 0 for pooling
    cols: int = 0                    # array columns C_out; 0 for pooling
    params: int = 0                  # trainable parameters, folded batch norm included
    fused: tuple[str, ...] = ()      # modules folded into this layer (BatchNorm, ReLU)
    place: tuple[int, int] | None = None  # (row0, col0) on the array; None for pooling
    tiles: int = 1                   # row tiles (contract step 12) when rows > the array's rows

    @property
    def is_mvm(self) -> bool:
        return self.op.uses_array

    @property
    def mvms(self) -> int:
        """One MVM per output position and row tile; pooling runs in the digital periphery and costs none."""
        return self.out_shape[0] * self.out_shape[1] * self.tiles if self.is_mvm else 0

    @property
    def out_words(self) -> int:
        h, w, c = self.out_shape
        return h * w * c


@dataclass(frozen=True)
class Footprint:
    """The whole network on one array: per-layer footprints and the totals the budgets are set on."""

    layers: tuple[LayerFootprint, ...]
    input_shape: tuple[int, int, int]  # C, H, W as PyTorch takes it
    array: tuple[int, int]             # (rows, cols) of the array it was placed on

    @property
    def mvm_layers(self) -> tuple[LayerFootprint, ...]:
        return tuple(L for L in self.layers if L.is_mvm)

    @property
    def params(self) -> int:
        return sum(L.params for L in self.layers)

    @property
    def mvms(self) -> int:
        return sum(L.mvms for L in self.layers)

    @property
    def cells(self) -> int:
        """Differential pairs holding weights (sum of rectangle areas)."""
        return sum(L.rows * L.cols for L in self.mvm_layers)

    @property
    def utilisation(self) -> float:
        return self.cells / (self.array[0] * self.array[1])

    @property
    def input_words(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    @property
    def max_activation(self) -> tuple[int, str]:
        """(words, layer name) of the largest activation tensor the SRAM must hold, input included.

        The last layer writes the separate output memory, so its output is not counted."""
        best = (self.input_words, "input")
        for L in self.layers[:-1]:
            if L.out_words > best[0]:
                best = (L.out_words, L.name)
        return best

    @property
    def pp_channels(self) -> int:
        """Post-processing (scale, bias) entries: one per output channel of each MVM or avgpool layer."""
        return sum(L.out_shape[2] for L in self.layers if L.op.uses_params)

    def table(self) -> str:
        """Markdown table of the layers, as docs/analognets.md shows them."""
        head = ("| layer | type | kernel / stride / pad | in -> out (HxWxC) | rows x cols | (row0, col0) "
                "| params | MVMs |\n|---|---|---|---|---|---|---:|---:|")
        lines = [head]
        for L in self.layers:
            typ = L.kind + "".join(f" +{f}" for f in L.fused)
            pad = f"{L.pad[0]}" if L.pad[0] == L.pad[1] else f"{L.pad[0]}x{L.pad[1]}"
            k = f"{L.kernel[0]}x{L.kernel[1]} / {L.stride} / {pad}"
            shp = f"{'x'.join(map(str, L.in_shape))} -> {'x'.join(map(str, L.out_shape))}"
            rect = f"{L.rows} x {L.cols}" if L.is_mvm else "-"
            place = f"({L.place[0]}, {L.place[1]})" if L.place else "-"
            lines.append(f"| {L.name} | {typ} | {k} | {shp} | {rect} | {place} | {L.params:,} | {L.mvms:,} |")
        words, where = self.max_activation
        lines.append(f"| **total** | {len(self.layers)} chip layers | | largest activation {words:,} words "
                     f"({where}) | {self.cells:,} pairs ({self.utilisation:.1%}) | | **{self.params:,}** "
                     f"| **{self.mvms:,}** |")
        return "\n".join(lines)


def analog_footprint(net: nn.Module, input_shape: tuple[int, int, int], cfg: AonCimConfig,
                     check_sram: bool = False) -> Footprint:
    """Footprint of `net` (flat sequential) for inputs of shape (C, H, W) on the chip `cfg`.

    Placement is the compiler's (firmware/placement.py); a layer with more rows than the array is
    split into row tiles side by side (contract step 12). Raises FootprintError if a layer's
    rectangle is wider than the array, if the rectangles do not pack on the array together, if the chip layers exceed cfg.max_layers or the post-processing
    entries cfg.param_depth, if the network output exceeds cfg.out_depth, or (check_sram) if an
    activation tensor exceeds cfg.act_depth.
    """
    layers = [replace(L, tiles=-(-L.rows // cfg.rows)) if L.is_mvm else L for L in _layers(net, input_shape)]
    for L in layers:
        if L.is_mvm and L.tiles * L.cols > cfg.cols:
            tiled = f" ({L.tiles} row tiles for its {L.rows} rows)" if L.tiles > 1 else ""
            raise FootprintError(f"layer {L.name}: needs {L.tiles * L.cols} columns (C_out{tiled}) > array columns "
                                 f"{cfg.cols}; use fewer output channels{' or fan-in' if tiled else ''}")
        if L.op is Op.AVGPOOL and L.kernel[0] * L.kernel[1] * cfg.dac_max >= 1 << cfg.pool_sum_bits:
            raise FootprintError(f"layer {L.name}: {L.kernel[0]}x{L.kernel[1]} average-pooling window sum exceeds "
                                 f"pool_sum_bits={cfg.pool_sum_bits}; pool earlier or use a smaller window")
    if len(layers) > cfg.max_layers:
        raise FootprintError(f"network has {len(layers)} chip layers > max_layers {cfg.max_layers}; "
                             "merge layers or raise max_layers")
    fp = Footprint(tuple(layers), tuple(input_shape), (cfg.rows, cfg.cols))
    if fp.pp_channels > cfg.param_depth:
        raise FootprintError(f"network needs {fp.pp_channels} post-processing entries > param_depth "
                             f"{cfg.param_depth}; use fewer channels or raise param_depth")
    if layers[-1].out_words > cfg.out_depth:
        raise FootprintError(f"layer {layers[-1].name}: output of {layers[-1].out_words} words > out_depth "
                             f"{cfg.out_depth}; end the network with fewer outputs")
    if check_sram:
        for L in [None, *layers[:-1]]:
            words, name = (fp.input_words, "input") if L is None else (L.out_words, f"layer {L.name}")
            if words > cfg.act_depth:
                raise FootprintError(f"{name}: activation of {words} words > act_depth {cfg.act_depth}; "
                                     "downsample earlier or raise act_depth")
    mvm = [L for L in layers if L.is_mvm]
    try:
        places = place_rectangles([(min(L.rows, cfg.rows), L.tiles * L.cols) for L in mvm], cfg.rows, cfg.cols,
                                  [L.name for L in mvm])
    except PlacementError as e:
        raise FootprintError(str(e)) from None
    placed = iter(places)
    layers = [replace(L, place=next(placed)) if L.is_mvm else L for L in layers]
    return Footprint(tuple(layers), tuple(input_shape), (cfg.rows, cfg.cols))


def _layers(net: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerFootprint]:
    """The compiler's lowering (firmware.compiler.lower_network) as footprints; its CompileError,
    one line naming the layer, becomes a FootprintError with the same message."""
    if len(input_shape) != 3:
        raise FootprintError(f"input_shape {input_shape} must be (C, H, W)")
    try:
        lowered = lower_network(net, tuple(input_shape))
    except CompileError as e:
        raise FootprintError(str(e)) from None
    out = []
    for L in lowered:
        (oh, ow), oc = L.out_hw, L.out_c
        rows, cols = L.weight.shape if L.op.uses_array else (0, 0)
        out.append(LayerFootprint(L.name, L.label, L.op, L.k, L.stride, tuple(L.pad), L.in_shape, (oh, ow, oc),
                                  rows=rows, cols=cols, params=L.params, fused=L.fused))
    return out
