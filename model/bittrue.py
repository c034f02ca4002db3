"""Bit-true reference: exactly the integer arithmetic of the chip (docs/architecture.md, "contract").

Every function here has an RTL twin; they must agree on every bit. int64 torch tensors carry the
arithmetic; the read-noise hash uses uint32 numpy because its wrap-around is part of the contract.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from aoncim.config import AonCimConfig
from aoncim.program import LayerDescriptor, Program

_M32 = np.uint64(0xFFFFFFFF)


def lowbias32(x: np.ndarray) -> np.ndarray:
    """Wellons' lowbias32 integer hash (uint32 -> uint32); cheap in hardware, good avalanche."""
    x = np.asarray(x, dtype=np.uint64) & _M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & _M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & _M32
    x ^= x >> np.uint64(16)
    return x


class ReadNoise:
    """Counter-based read noise: a pure function of (seed, global MVM index, physical column).

    The sample is the Irwin-Hall sum of the four bytes of lowbias32(counter ^ seed), centred:
    near-Gaussian, std ~147.8 raw units, scaled to `read_noise_lsb` ADC LSBs by `noise_mult`.
    """

    def __init__(self, cfg: AonCimConfig, seed: int):
        self.cfg = cfg
        self.seed = np.uint64(seed & 0xFFFFFFFF)

    def raw(self, mvm: np.ndarray, col: np.ndarray) -> np.ndarray:
        ctr = (np.asarray(mvm, dtype=np.uint64) * np.uint64(self.cfg.cols) + np.asarray(col, dtype=np.uint64)) & _M32
        h = lowbias32(ctr ^ self.seed)
        s = sum((h >> np.uint64(8 * k)) & np.uint64(0xFF) for k in range(4))
        return s.astype(np.int64) - self.cfg.NOISE_MEAN_RAW


class AdcTransfer:
    """Fixed-gain ADC: code = clip(floor((I*mult*2**(dac_bits-bits) + n*noise_mult + 2**(shift-1)) / 2**shift)).

    The 2**(dac_bits-bits) factor is the integrator gain step that keeps full-scale input at full
    scale for every activation precision; the gain is otherwise the same for all layers.
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg

    def __call__(self, col_sum: torch.Tensor, noise_raw: torch.Tensor, in_bits: int) -> torch.Tensor:
        c = self.cfg
        v = col_sum * (c.adc_gain_mult << (c.dac_bits - in_bits)) + noise_raw * c.noise_mult
        code = (v + (1 << (c.adc_gain_shift - 1))) >> c.adc_gain_shift
        return code.clamp(-c.adc_max, c.adc_max)


class PostProcessing:
    """Per-channel requantisation: y = (code*scale + bias + 2**(shift-1)) >> shift, then clamp."""

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg

    def __call__(self, code: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, d: LayerDescriptor) -> torch.Tensor:
        y = code * scale + bias
        if d.shift:
            y = (y + (1 << (d.shift - 1))) >> d.shift
        if d.to_out:
            lo = 0 if d.relu else -(1 << (self.cfg.out_bits - 1))
            return y.clamp(lo, (1 << (self.cfg.out_bits - 1)) - 1)
        return y.clamp(0, (1 << d.out_bits) - 1)


def im2col(x_hwc: torch.Tensor, d: LayerDescriptor) -> torch.Tensor:
    """(H, W, C) activation codes -> (positions, k_h*k_w*C) rows in (ky, kx, c) order, zero padded."""
    x = torch.nn.functional.pad(x_hwc, (0, 0, d.pad, d.pad, d.pad, d.pad))
    p = x.unfold(0, d.k_h, d.stride).unfold(1, d.k_w, d.stride)  # (oh, ow, C, kh, kw)
    p = p[: d.out_h, : d.out_w].permute(0, 1, 3, 4, 2)  # (oh, ow, kh, kw, C)
    return p.reshape(d.out_h * d.out_w, d.k_rows)


@dataclass
class LayerTrace:
    """Integer outputs of one layer: activation codes (H, W, C) or signed outputs, plus ADC codes."""

    output: torch.Tensor
    adc_codes: torch.Tensor
    col_sums: torch.Tensor


class BitTrueExecutor:
    """Runs a Program on integer inputs exactly as the chip does, layer by layer."""

    def __init__(self, cfg: AonCimConfig, program: Program):
        program.check(cfg)
        self.cfg = cfg
        self.program = program
        self.adc = AdcTransfer(cfg)
        self.pp = PostProcessing(cfg)
        self._g = torch.from_numpy(program.g_plus.astype(np.int64) - program.g_minus.astype(np.int64))

    def run(self, x_hwc: np.ndarray | torch.Tensor, seed: int) -> list[LayerTrace]:
        cfg, noise = self.cfg, ReadNoise(self.cfg, seed)
        first = self.program.layers[0]
        x = torch.as_tensor(np.asarray(x_hwc), dtype=torch.int64)
        expect = (first.in_h, first.in_w, first.in_c)
        if tuple(x.shape) != expect:
            raise ValueError(f"input shape {tuple(x.shape)} != {expect} (H, W, C) expected by layer 0")
        if x.min() < 0 or x.max() >= (1 << first.in_bits):
            raise ValueError(f"input codes must lie in 0..{(1 << first.in_bits) - 1} ({first.in_bits}-bit)")
        traces, mvm0 = [], 0
        for d in self.program.layers:
            rows = im2col(x, d)
            g = self._g[d.row0 : d.row0 + d.k_rows, d.col0 : d.col0 + d.out_c]
            col_sums = rows @ g  # (positions, out_c), exact
            mvm = np.arange(d.positions, dtype=np.int64)[:, None] + mvm0
            col = np.arange(d.out_c, dtype=np.int64)[None, :] + d.col0
            n = torch.from_numpy(noise.raw(mvm, col)) if cfg.read_noise_lsb > 0 else torch.zeros_like(col_sums)
            codes = self.adc(col_sums, n, d.in_bits)
            ps = slice(d.param_base, d.param_base + d.out_c)
            scale = torch.as_tensor(self.program.pp_scale[ps], dtype=torch.int64)
            bias = torch.as_tensor(self.program.pp_bias[ps], dtype=torch.int64)
            y = self.pp(codes, scale, bias, d).reshape(d.out_h, d.out_w, d.out_c)
            traces.append(LayerTrace(output=y, adc_codes=codes, col_sums=col_sums))
            x, mvm0 = y, mvm0 + d.positions
        return traces
