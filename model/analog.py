"""Statistical (float) analog forward: the standard AIMC crossbar model of Rasch et al. 2302.08469
(paper-targets section 2, last bullet) as drop-in `nn.Linear` / `nn.Conv2d` / `nn.Conv1d` layers.

One analog MVM, in the units of the bit-true contract (docs/architecture.md):

    code = round(clamp(x, 0, x_max) / x_max * (2**b - 1))        unsigned DAC code, b = in_bits
    u    = code * 2**(dac_bits - b) / dac_max                    input, 1 = full scale (gain step)
    w_n  = clip(W / w_max, -1, 1)   or  PCM (g+ - g-) / g_max    differential pair, 1 = g_max
    y    = sum_rows u * w_n  + out_noise + 0.0175 sqrt(sum |w_n| u^2) N(0,1)    per row tile
    q    = ADC(y): clip at +-adc_bound, adc_max steps each side                  per row tile
    out  = alpha * x_scale * w_max * sum_tiles q + bias          digital post-processing

Convolutions are their im2col matrix: rows (ky, kx, c) (a Conv1d is a 1 x k Conv2d, rows (kx, c)),
one column per output channel. A grouped or depthwise convolution is what the compiler maps: a
block-diagonal dense conv whose column o holds only group(o)'s weights (architecture.md, contract
step 14). So its w_max, PCM devices and noise are those of the column's own I/groups*kh*kw weights
(the block's zero pairs are not simulated; the bit-true snapshot gives them the programming noise of
a zero target, which measurably changes nothing), and row tiles follow the dense rows:
kpos*C_in + group*I_g + c.

`x_scale = x_max * dac_max / ((2**b - 1) * 2**(dac_bits - b))` undoes the input mapping exactly,
so the 4- and 6-bit gain step of the chip (full-scale input is full scale at every precision) is
modelled, not approximated. One ADC LSB of y equals one LSB of the bit-true ADC, and
`cfg.out_noise_std` is the chip's read noise in these units. Rounding uses straight-through
gradients (STE); clipping has zero gradient outside its range, as the hardware has.

Modes (`set_analog_mode`): "ideal" (plain float layer), "hwa" (quantisation + noise, weight-noise
injection while training), "inference" (PCM conductances from model/pcm.py read at t_inf, with or
without global drift compensation).
"""
from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aoncim.config import DEFAULT_CONFIG, AonCimConfig

from .pcm import PcmCrossbar, check_time

MODES = ("ideal", "hwa", "inference")
# Short-term (per-read) weight noise of 2302.08469's standard model: sigma = c * sqrt(sum |w| x^2).
# A statistical-model hyper-parameter: the bit-true chip has only the additive ADC read noise.
SHORT_TERM_READ_NOISE = 0.0175
# 99.9th percentile of the calibration activations sets x_max (same rule as firmware.compiler).
INPUT_RANGE_PERCENTILE = 0.999
_QUANTILE_MAX = 1 << 24  # torch.quantile's input-size limit


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def _seed(*parts: int) -> int:
    """Independent 64-bit seed for (user seed, layer, purpose, ...): streams never overlap."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(1, np.uint64)[0])


def _check_train_times(times) -> tuple[float, float] | None:
    if times is None:
        return None
    lo, hi = (float(v) for v in times)
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"pcm_train_times={times}: need 0 < t_lo <= t_hi (seconds after programming)")
    return lo, hi


def _time_bits(t: float) -> int:
    return int.from_bytes(struct.pack("<d", t), "little")


def _percentile(x: torch.Tensor, q: float) -> float:
    flat = x.detach().reshape(-1).float()
    if flat.numel() > _QUANTILE_MAX:
        flat = flat[:: -(-flat.numel() // _QUANTILE_MAX)]
    return float(torch.quantile(flat, q))


class _AnalogMVM:
    """Shared analog forward of AnalogLinear, AnalogConv1d and AnalogConv2d (mixed into the nn layer)."""

    weight: nn.Parameter
    bias: nn.Parameter | None

    # ------------------------------------------------------------------ setup
    def _init_analog(self, cfg: AonCimConfig, in_bits: int | None, per_channel: bool, weight_noise: float,
                     out_noise_std: float | None, read_noise_scale: float, device=None, dtype=None,
                     pcm_train_times: tuple[float, float] | None = None) -> None:
        self.cfg = cfg
        self.in_bits = max(cfg.act_bits_supported) if in_bits is None else in_bits
        self.per_channel = bool(per_channel)
        for name, v in (("weight_noise", weight_noise), ("read_noise_scale", read_noise_scale),
                        ("out_noise_std", out_noise_std)):
            if v is not None and not v >= 0:
                raise ValueError(f"{name}={v} must be >= 0")
        self.weight_noise = float(weight_noise)
        self.out_noise_std = cfg.out_noise_std if out_noise_std is None else float(out_noise_std)
        self.read_noise_scale = float(read_noise_scale)
        self.pcm_train_times = _check_train_times(pcm_train_times)
        # x_max of the unsigned DAC range; 0 means "not calibrated yet" (set from the first batch).
        self.input_range = nn.Parameter(torch.zeros((), device=device, dtype=dtype))
        self.mode = "ideal"
        self.noise = True
        self.t_inf: float | None = None
        self.generator: torch.Generator | None = None
        self.crossbar: PcmCrossbar | None = None
        self._crossbar_key: tuple | None = None
        self._pcm_w: torch.Tensor | None = None   # normalised PCM weights of the current read
        self._pcm_w_max: torch.Tensor | None = None
        self.alpha = 1.0
        self._tile_masks: list[torch.Tensor] | None = None
        # Mean DAC input over the fan-in (weight.reshape(out, -1) order), from calibrate_offsets;
        # the host's offset calibration reads every column with it.
        self.input_mean: torch.Tensor | None = None
        self._offset: torch.Tensor | None = None  # per-column correction of the current read (y units)

    @property
    def in_bits(self) -> int:
        return self._in_bits

    @in_bits.setter
    def in_bits(self, bits: int) -> None:
        if bits not in self.cfg.act_bits_supported:
            raise ValueError(f"in_bits={bits} not supported: the DAC takes {self.cfg.act_bits_supported} "
                             "(cfg.act_bits_supported)")
        self._in_bits = int(bits)

    def set_mode(self, mode: str, *, t_inf: float | None = None, seed: int | None = None, index: int = 0,
                 compensate: bool = True, noise: bool = True, quantize_g: bool = False,
                 offset_cal: bool = True) -> None:
        """Switch this layer; see `set_analog_mode` (index keeps the layers' random streams apart)."""
        if mode not in MODES:
            raise ValueError(f"unknown analog mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "inference":
            if t_inf is None:
                raise ValueError("mode='inference' needs t_inf, the time in seconds since programming")
            t_inf = check_time(t_inf)
        elif t_inf is not None:
            raise ValueError(f"t_inf applies to mode='inference' only, not mode={mode!r}")
        self.mode, self.noise, self.t_inf = mode, bool(noise), t_inf
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
            self.generator = None  # training noise from the global RNG (torch.manual_seed governs it)
        else:
            self.generator = torch.Generator(self.weight.device).manual_seed(_seed(seed, index, 0))
        self._pcm_w = self._pcm_w_max = self._offset = None
        self.alpha = 1.0
        if mode == "inference":
            self._read_pcm(t_inf, seed, index, compensate, quantize_g)
            if compensate and offset_cal and self.input_mean is not None:
                self._offset = self._offset_error()

    def _read_pcm(self, t_inf: float, seed: int, index: int, compensate: bool, quantize_g: bool) -> None:
        w = self.weight.detach()
        key = (seed, index, self.per_channel, w.data_ptr(), w._version)
        if self._crossbar_key != key:
            # Programming noise and drift exponents are drawn once per programming, like real devices.
            self.crossbar = PcmCrossbar(self.cfg, w.reshape(w.shape[0], -1), per_column=self.per_channel,
                                        seed=_seed(seed, index, 1))
            self._crossbar_key = key
        # 1/f read noise is quasi-static within one evaluation: one snapshot per (seed, t), as the
        # bit-true model takes one conductance snapshot.
        gen = torch.Generator().manual_seed(_seed(seed, index, 2, _time_bits(t_inf)))
        read = self.crossbar.read(t_inf, compensate=compensate, generator=gen)
        g_max = self.cfg.g_max_us
        if quantize_g:
            q = self.cfg.gcode_max
            w_n = (torch.round((read.g_plus / g_max * q).clamp(0, q)) - torch.round((read.g_minus / g_max * q).clamp(0, q))) / q
        else:
            w_n = (read.g_plus - read.g_minus) / g_max
        w_max = g_max / self.crossbar.scale  # the w_max the pairs were mapped with
        w_max = w_max.reshape(-1) if self.per_channel else w_max.reshape(())
        self._pcm_w = w_n.reshape(w.shape).to(device=w.device, dtype=w.dtype)
        self._pcm_w_max = w_max.to(device=w.device, dtype=w.dtype)
        self.alpha = read.alpha

    def _offset_error(self) -> torch.Tensor:
        """Per-column offset calibration (model/snapshot.py `offset_bias`, in float): the error of
        the compensated read along the layer's mean input, alpha * w_read - w_target, which the
        host subtracts through each column's digital bias. `input_mean` covers all the layer's
        rows; a grouped conv's column reads its own group's part of it."""
        w = self.weight.detach()
        w_target = (w / self._per_out(self._w_max(w))).clamp(-1, 1).reshape(w.shape[0], -1)
        dw = self._pcm_w.reshape(w.shape[0], -1) * self.alpha - w_target
        g = getattr(self, "groups", 1)
        mean = self.input_mean.to(dw).reshape(g, -1)  # (groups, I/groups * kh * kw), c-major rows
        return torch.einsum("gok,gk->go", dw.reshape(g, -1, dw.shape[1]), mean).reshape(-1)

    # ------------------------------------------------------------------ pieces of the forward
    def _fan_in(self) -> int:
        """Rows of the layer's rectangle on the array (the compiler's k_rows): the fan-in, for a
        grouped conv the rows of its block-diagonal dense matrix, C_in * kh * kw."""
        return self.weight[0].numel() * getattr(self, "groups", 1)

    def _row_index(self) -> torch.Tensor:
        """Crossbar row of every weight: shaped like weight[0] when all columns share their rows,
        like weight when they differ (a grouped conv's columns sit on their group's rows)."""
        raise NotImplementedError

    def tile_masks(self) -> list[torch.Tensor] | None:
        """Row-tile masks (shaped like `_row_index`) when the layer's rows exceed cfg.rows, else None."""
        if self._fan_in() <= self.cfg.rows:
            return None
        if self._tile_masks is None or self._tile_masks[0].device != self.weight.device:
            tile = self._row_index().to(self.weight.device) // self.cfg.rows
            self._tile_masks = [(tile == k).to(self.weight.dtype) for k in range(int(tile.max()) + 1)]
        return self._tile_masks

    def _w_max(self, w: torch.Tensor) -> torch.Tensor:
        a = w.detach().abs().reshape(w.shape[0], -1)
        m = a.amax(dim=1) if self.per_channel else a.amax()
        return torch.where(m > 0, m, torch.ones_like(m))

    def _normalised_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(w_n, w_max): weights in units of w_max (|w_n| <= 1) and w_max (scalar or per column)."""
        if self.mode == "inference":
            return self._pcm_w, self._pcm_w_max
        w_max = self._w_max(self.weight)
        w_n = self.weight / self._per_out(w_max)
        if self.training and self.noise and self.pcm_train_times is not None:
            w_n = w_n + (self._pcm_sample(w_n.detach()) - w_n.detach())
        if self.training and self.noise and self.weight_noise > 0:
            w_n = w_n + self.weight_noise * self._randn(w_n.shape)
        # Noise can push a weight past the device range; a pair cannot exceed g_max.
        return w_n.clamp(-1.0, 1.0), w_max

    def _pcm_sample(self, w_n: torch.Tensor) -> torch.Tensor:
        """Drift-aware noise: w_n programmed on fresh PCM devices and read, compensated, at a time
        drawn log-uniformly from pcm_train_times -- the inference-time error distribution itself,
        not a Gaussian stand-in. Used with a straight-through gradient."""
        seed = int(torch.randint(0, 2**62, (), generator=self.generator, dtype=torch.int64))
        lo, hi = self.pcm_train_times
        u = float(torch.rand((), generator=self.generator, dtype=torch.float64))
        t = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        flat = w_n.reshape(w_n.shape[0], -1)
        xbar = PcmCrossbar(self.cfg, flat, per_column=self.per_channel, seed=seed)
        gen = torch.Generator().manual_seed(seed ^ 0x7EA1)
        w = xbar.weights(t, compensate=True, generator=gen)
        # weights() is in the units of `flat`, whose max|.| is 1 (per column if per_channel).
        return w.reshape(w_n.shape).to(device=w_n.device, dtype=w_n.dtype)

    def _per_out(self, v: torch.Tensor) -> torch.Tensor:
        """Broadcast a scalar or per-output vector over the weight (out, ...)."""
        return v.reshape(-1, *([1] * (self.weight.dim() - 1))) if v.dim() else v

    def _x_max(self, x: torch.Tensor) -> torch.Tensor:
        if float(self.input_range.detach()) <= 0:
            with torch.no_grad():
                self.input_range.fill_(_percentile(x.clamp_min(0), INPUT_RANGE_PERCENTILE) or 1.0)
        return self.input_range.clamp_min(torch.finfo(self.input_range.dtype).tiny)

    def dac(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unsigned DAC: (u, x_scale) with u in full-scale units and x ~= u * x_scale.

        Negative inputs are clipped to 0. The compiler gives a signed map a zero point instead
        (architecture.md, contract steps 1 and 13), which this model does not simulate: a layer
        trained here should see non-negative inputs (a ReLU before it, inputs scaled to [0, 1]).
        """
        cfg, b = self.cfg, self.in_bits
        levels = (1 << b) - 1
        step = 1 << (cfg.dac_bits - b)
        x_max = self._x_max(x)
        code = ste_round(torch.minimum(x.clamp_min(0), x_max) / x_max * levels)
        return code * (step / cfg.dac_max), x_max * (cfg.dac_max / (levels * step))

    def adc(self, y: torch.Tensor) -> torch.Tensor:
        """Fixed-gain ADC on y in full-scale units: clip at +-adc_bound, adc_max steps each side.

        Float twin of `aoncim.adc.AdcTransfer.transfer`: its LSB and clip are the transfer's, so
        one LSB here is one code there (tests/test_analog.py). Only an exact tie may differ: the
        chip rounds it up, the float value here lies a rounding error to either side of it.
        """
        t = self.cfg.adc_transfer
        return ste_round((y / t.lsb).clamp(-t.adc_max, t.adc_max)) * t.lsb

    def _randn(self, shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.weight.device, dtype=self.weight.dtype)

    def _analog_noise(self, u: torch.Tensor, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Additive output noise plus short-term read noise c*sqrt(sum |w| u^2); not differentiated."""
        with torch.no_grad():
            var = torch.full_like(y, self.out_noise_std**2)
            if self.read_noise_scale > 0:
                var = var + self.read_noise_scale**2 * self._mvm(u * u, w.abs()).clamp_min(0)
            return var.sqrt() * self._randn(y.shape)

    def _mvm(self, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _float_forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _out_view(self, v: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Broadcast a per-output-channel vector over the layer output."""
        raise NotImplementedError

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "ideal":
            return self._float_forward(x)
        u, x_scale = self.dac(x)
        w_n, w_max = self._normalised_weight()
        masks = self.tile_masks()
        q = None
        for w_t in ([w_n] if masks is None else [w_n * m for m in masks]):
            y = self._mvm(u, w_t)
            if self.noise:
                y = y + self._analog_noise(u, w_t, y)
            q = self.adc(y) if q is None else q + self.adc(y)  # row tiles: ADC codes summed digitally
        scale = x_scale * (self._out_view(w_max, q) if w_max.dim() else w_max)
        out = q * (scale * self.alpha)
        if self._offset is not None:
            out = out - self._out_view(self._offset, out) * scale
        if self.bias is not None:
            out = out + self._out_view(self.bias, out)
        return out

    def analog_repr(self) -> str:
        t = "" if self.t_inf is None else f", t_inf={self.t_inf:g}s"
        return f"mode={self.mode}{t}, in_bits={self.in_bits}, per_channel={self.per_channel}"


class AnalogLinear(_AnalogMVM, nn.Linear):
    """nn.Linear on the analog crossbar: rows = in_features (tiled by cfg.rows), columns = outputs."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, cfg: AonCimConfig = DEFAULT_CONFIG,
                 in_bits: int | None = None, per_channel: bool = False, weight_noise: float = 0.0,
                 out_noise_std: float | None = None, read_noise_scale: float = SHORT_TERM_READ_NOISE,
                 pcm_train_times: tuple[float, float] | None = None, device=None, dtype=None):
        nn.Linear.__init__(self, in_features, out_features, bias, device=device, dtype=dtype)
        self._init_analog(cfg, in_bits, per_channel, weight_noise, out_noise_std, read_noise_scale, device, dtype,
                          pcm_train_times)

    @classmethod
    def from_float(cls, m: nn.Linear, **kw) -> "AnalogLinear":
        """Wrap a trained nn.Linear, sharing its Parameter objects (same state_dict keys)."""
        new = cls(m.in_features, m.out_features, m.bias is not None, device="meta", **kw)
        new.weight, new.bias = m.weight, m.bias
        new.input_range = nn.Parameter(torch.zeros((), device=m.weight.device, dtype=m.weight.dtype))
        return new.train(m.training)

    # (C, H, W) of the map a Flatten fed this layer, when H*W > 1: the chip's rows are that map in
    # HWC order (contract step 7) while PyTorch flattens CHW, which matters once the fan-in is
    # split into row tiles. None: the input is a vector (or H = W = 1), rows = features.
    input_chw: tuple[int, int, int] | None = None

    def _row_index(self) -> torch.Tensor:
        if self.input_chw is None:
            return torch.arange(self.in_features)
        c, h, w = self.input_chw
        if c * h * w != self.in_features:
            raise ValueError(f"input_chw={self.input_chw} does not match in_features={self.in_features}")
        ch = torch.arange(c).view(c, 1, 1)
        hw = (torch.arange(h).view(1, h, 1) * w + torch.arange(w).view(1, 1, w))
        return (hw * c + ch).reshape(-1)  # CHW-flatten position -> HWC crossbar row

    def _mvm(self, u, w):
        return F.linear(u, w)

    def _float_forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def _out_view(self, v, ref):
        return v

    def extra_repr(self) -> str:
        return f"{nn.Linear.extra_repr(self)}, {self.analog_repr()}"


class _AnalogConv(_AnalogMVM):
    """What AnalogConv1d and AnalogConv2d share: the im2col rows (kpos, c) of the bit-true
    contract, kpos = ky*kw + kx (kx for 1-D), tiled by cfg.rows; columns = output channels."""

    in_channels: int
    out_channels: int
    groups: int

    @classmethod
    def from_float(cls, m: nn.modules.conv._ConvNd, **kw) -> "_AnalogConv":
        """Wrap a trained float conv of this dimension, sharing its Parameter objects (same state_dict keys)."""
        new = cls(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                  m.bias is not None, m.padding_mode, device="meta", **kw)
        new.weight, new.bias = m.weight, m.bias
        new.input_range = nn.Parameter(torch.zeros((), device=m.weight.device, dtype=m.weight.dtype))
        return new.train(m.training)

    def _row_index(self) -> torch.Tensor:
        ig, *k = self.weight.shape[1:]
        ones = [1] * len(k)
        kpos = torch.arange(math.prod(k)).view(1, *k)
        rows = kpos * self.in_channels + torch.arange(ig).view(ig, *ones)  # (I/groups, *k)
        if self.groups == 1:
            return rows
        # Block-diagonal dense matrix: column o's weights sit on its group's input channels.
        group = torch.arange(self.out_channels) // (self.out_channels // self.groups)
        return rows.unsqueeze(0) + (group * ig).view(-1, 1, *ones)

    def _mvm(self, u, w):
        return self._conv_forward(u, w, None)

    def _float_forward(self, x):
        return self._conv_forward(x, self.weight, self.bias)

    def _out_view(self, v, ref):
        return v.view(1, -1, *([1] * (ref.dim() - 2)))

    def _im2col(self, u: torch.Tensor) -> torch.Tensor:
        """(N, C * kh * kw, positions): the layer's im2col columns of u, rows in weight.reshape(O, -1)
        order (c, ky, kx) over all C input channels, zero-padded as the chip pads."""
        u = F.pad(u, self._reversed_padding_repeated_twice)
        if u.dim() == 3:  # 1-D: a 1 x k convolution
            return F.unfold(u.unsqueeze(2), (1, self.kernel_size[0]), (1, self.dilation[0]), 0, (1, self.stride[0]))
        return F.unfold(u, self.kernel_size, self.dilation, 0, self.stride)


class AnalogConv2d(_AnalogConv, nn.Conv2d):
    """nn.Conv2d on the analog crossbar: rows = (ky, kx, c) im2col order of the bit-true contract
    (tiled by cfg.rows), columns = output channels; any groups (block-diagonal, see module doc)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *,
                 cfg: AonCimConfig = DEFAULT_CONFIG, in_bits: int | None = None, per_channel: bool = False,
                 weight_noise: float = 0.0, out_noise_std: float | None = None,
                 read_noise_scale: float = SHORT_TERM_READ_NOISE, pcm_train_times: tuple[float, float] | None = None,
                 device=None, dtype=None):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                           padding_mode, device=device, dtype=dtype)
        self._init_analog(cfg, in_bits, per_channel, weight_noise, out_noise_std, read_noise_scale, device, dtype,
                          pcm_train_times)

    def extra_repr(self) -> str:
        return f"{nn.Conv2d.extra_repr(self)}, {self.analog_repr()}"


class AnalogConv1d(_AnalogConv, nn.Conv1d):
    """nn.Conv1d on the analog crossbar, exactly a 1 x k AnalogConv2d (the compiler's view of a
    Conv1d): rows = (kx, c), columns = output channels; any groups."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *,
                 cfg: AonCimConfig = DEFAULT_CONFIG, in_bits: int | None = None, per_channel: bool = False,
                 weight_noise: float = 0.0, out_noise_std: float | None = None,
                 read_noise_scale: float = SHORT_TERM_READ_NOISE, pcm_train_times: tuple[float, float] | None = None,
                 device=None, dtype=None):
        nn.Conv1d.__init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                           padding_mode, device=device, dtype=dtype)
        self._init_analog(cfg, in_bits, per_channel, weight_noise, out_noise_std, read_noise_scale, device, dtype,
                          pcm_train_times)

    def extra_repr(self) -> str:
        return f"{nn.Conv1d.extra_repr(self)}, {self.analog_repr()}"


ANALOG_LAYERS = (AnalogLinear, AnalogConv1d, AnalogConv2d)
# The float layers convert_to_analog replaces, and their analog twins.
FLOAT_TO_ANALOG = ((nn.Linear, AnalogLinear), (nn.Conv1d, AnalogConv1d), (nn.Conv2d, AnalogConv2d))


def analog_layers(model: nn.Module) -> list[tuple[str, _AnalogMVM]]:
    """(qualified name, layer) of every analog layer, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ANALOG_LAYERS)]


def _analog_class(m: nn.Module, name: str) -> type | None:
    """The analog twin of float layer `m`, or None when `m` is not one convert_to_analog replaces.
    A subclass with its own forward is refused: the analog layer would not run that forward."""
    if isinstance(m, ANALOG_LAYERS):
        return None
    for base, cls in FLOAT_TO_ANALOG:
        if isinstance(m, base):
            if type(m).forward is not base.forward:
                raise ValueError(f"module {name or type(m).__name__} ({type(m).__name__}) subclasses {base.__name__} "
                                 "with its own forward, which an analog layer would not run; use a plain "
                                 f"{base.__name__} or convert it yourself")
            return cls
    return None


def convert_to_analog(model: nn.Module, cfg: AonCimConfig = DEFAULT_CONFIG, *,
                      in_bits: int | Mapping[str, int] | None = None, **layer_kw) -> nn.Module:
    """Replace every nn.Linear / nn.Conv1d / nn.Conv2d anywhere in the module tree by its analog
    twin, in place, sharing Parameters (a layer reachable under several names becomes one analog
    layer at all of them).

    in_bits: one activation precision for all layers, or {qualified module name: bits} (others get
    max(cfg.act_bits_supported)). layer_kw: per_channel, weight_noise, out_noise_std, read_noise_scale, pcm_train_times.
    Weight/bias state_dict keys are unchanged; each layer adds `input_range` (x_max), so a float
    state_dict loads with strict=False. Returns the model (or the new layer if `model` is one).
    model/convert.py's `convert_to_analog` is the user-facing version: a copy, a recipe, calibration.
    """
    floats = [(n, m, cls) for n, m in model.named_modules() if (cls := _analog_class(m, n)) is not None]
    if isinstance(in_bits, Mapping):
        unknown = sorted(set(in_bits) - {n for n, _, _ in floats})
        if unknown:
            raise ValueError(f"in_bits names {', '.join(unknown)} are not Linear/Conv1d/Conv2d modules of the model")
    new = {}
    for name, m, cls in floats:
        bits = in_bits.get(name) if isinstance(in_bits, Mapping) else in_bits
        new[id(m)] = cls.from_float(m, cfg=cfg, in_bits=bits, **layer_kw)
        if not name:
            return new[id(m)]
    for name, m in list(model.named_modules(remove_duplicate=False)):
        if name and id(m) in new:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, new[id(m)])
    return model


def set_analog_mode(model: nn.Module, mode: str, *, t_inf: float | None = None, seed: int | None = None,
                    compensate: bool = True, noise: bool = True, quantize_g: bool = False,
                    offset_cal: bool = True) -> nn.Module:
    """Switch every analog layer of `model`.

    mode "ideal": float layers. "hwa": DAC/ADC quantisation (STE), output and short-term read noise,
    weight-noise injection in train(). "inference": PCM conductances programmed once per (seed,
    weights) and read at t_inf seconds after programming (drift + 1/f read noise snapshot), global
    drift compensation when `compensate`; `quantize_g` rounds the snapshot to gcode_bits codes as the
    bit-true model does. noise=False switches off all stochastic noise of the forward (not the PCM
    device effects). seed identifies the chip: the same seed reuses the programming of unchanged
    weights across calls (so a time sweep reads one programmed array) and makes reads and forward
    noise reproducible; None draws a seed from torch's global RNG (a fresh programming each call).
    """
    layers = analog_layers(model)
    if not layers:
        raise ValueError("model has no analog layers: call convert_to_analog first")
    if seed is None and mode == "inference":
        seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    for i, (_, layer) in enumerate(layers):
        layer.set_mode(mode, t_inf=t_inf, seed=seed, index=i, compensate=compensate, noise=noise,
                       quantize_g=quantize_g, offset_cal=offset_cal)
    return model


def _ideal_pass(model: nn.Module, batches: torch.Tensor | Iterable[torch.Tensor], hook) -> None:
    """Run `batches` through the float ("ideal") network, calling hook(name, layer, input) before
    every analog layer; the layers' modes are restored afterwards, whatever happens."""
    layers = analog_layers(model)
    modes = {n: (m.mode, m.t_inf) for n, m in layers}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: hook(n, mod, args[0])) for n, m in layers]
    try:
        for _, m in layers:
            m.mode = "ideal"
        for xb in ([batches] if isinstance(batches, torch.Tensor) else batches):
            model(xb)
    finally:
        for h in hooks:
            h.remove()
        for n, m in layers:
            m.mode, m.t_inf = modes[n]


@torch.no_grad()
def calibrate_input_ranges(model: nn.Module, batches: torch.Tensor | Iterable[torch.Tensor],
                           percentile: float = INPUT_RANGE_PERCENTILE) -> dict[str, float]:
    """Set every layer's x_max to the `percentile` of its (non-negative) float inputs; returns them."""
    if not 0 < percentile <= 1:
        raise ValueError(f"percentile={percentile} must be in (0, 1]")
    layers = analog_layers(model)
    seen: dict[str, list[torch.Tensor]] = {n: [] for n, _ in layers}
    _ideal_pass(model, batches, lambda n, mod, x: seen[n].append(x.detach().clamp_min(0)))
    ranges = {}
    for n, m in layers:
        if not seen[n]:
            raise ValueError(f"layer {n} saw no input during calibration")
        ranges[n] = _percentile(torch.cat([s.reshape(-1) for s in seen[n]]), percentile) or 1.0
        m.input_range.fill_(ranges[n])
    return ranges


@torch.no_grad()
def calibrate_offsets(model: nn.Module, batches: torch.Tensor | Iterable[torch.Tensor]) -> None:
    """Store every layer's mean DAC input over its fan-in (the im2col mean for convolutions): the
    offset-calibration input the compiler also emits (Program.calib_codes). Run after the input
    ranges are final."""
    layers = analog_layers(model)
    sums: dict[str, list] = {n: [0.0, 0] for n, _ in layers}

    def hook(n, mod, x):
        u, _ = mod.dac(x)
        if isinstance(mod, _AnalogConv):
            cols = mod._im2col(u)  # N, C*kh*kw, L
            sums[n][0] = sums[n][0] + cols.sum((0, 2))
            sums[n][1] += cols.shape[0] * cols.shape[2]
        else:
            flat = u.reshape(-1, u.shape[-1])
            sums[n][0] = sums[n][0] + flat.sum(0)
            sums[n][1] += flat.shape[0]

    _ideal_pass(model, batches, hook)
    for n, m in layers:
        if not sums[n][1]:
            raise ValueError(f"layer {n} saw no input during offset calibration")
        m.input_mean = (sums[n][0] / sums[n][1]).detach()
