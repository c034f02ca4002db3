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


class DatapathEvents:
    """Counts of the datapath's corner cases in the values a `BitTrueExecutor` computes: the events
    where a wrong rail, rounding or clamp would change a result (datapath coverage, sim/coverage.py).

    Off by default (`BitTrueExecutor(..., events=None)`): counting re-derives intermediate values,
    and the golden model must stay as fast as the plain arithmetic. Each count is a number of
    values (conversions, tile sums, post-processed outputs); the names are `bins(act_bits)`:

    - ADC (contract step 5), with q = (v + rounding) >> shift the code before the clamp:
      `adc +sat Nb` / `adc -sat Nb` q beyond +-adc_max (clamped), per input precision N (the gain
      steps with it); `adc +max` / `adc -max` q exactly +-adc_max (the rail reached unclamped);
      `adc tie` v exactly half an LSB, (v mod 2**shift) == 2**(shift-1), where the rounding picks
      between two codes that are both in range (a tie the clamp hides decides nothing);
    - row tiles (step 12): `tile-sum +max` / `tile-sum -max`, a code sum of T > 1 tiles at +-T*adc_max
      (every tile on the same rail);
    - post-processing (step 6), acc = code*alpha*scale + (bias << f): `pp tie` acc exactly half an
      output LSB, between two outputs both within the clamp; `act >max Nb` an activation above
      2**N - 1 (per output precision N), `act <0` below 0; for the output memory `out >max`,
      `out <min` (no ReLU) and `out relu<0` (with ReLU).
    """

    def __init__(self):
        self.counts: dict[str, int] = {}

    @staticmethod
    def bins(act_bits=(8, 6, 4)) -> list[str]:
        """Every event name, in report order, for a chip with activation precisions `act_bits`."""
        return ([f"adc +sat {b}b" for b in act_bits] + [f"adc -sat {b}b" for b in act_bits] +
                ["adc +max", "adc -max", "adc tie", "tile-sum +max", "tile-sum -max", "pp tie"] +
                [f"act >max {b}b" for b in act_bits] + ["act <0", "out >max", "out <min", "out relu<0"])

    def add(self, name: str, n) -> None:
        n = int(n)
        if n:
            self.counts[name] = self.counts.get(name, 0) + n

    def adc(self, v: torch.Tensor, transfer, in_bits: int) -> None:
        """The conversions of `v`, the value before rounding and shift (`before_shift` of
        `transfer`, the config's aoncim.adc.AdcTransfer, whose rounding, shift and rails apply)."""
        shift, adc_max = transfer.gain_shift, transfer.adc_max
        q = (v + transfer.rounding) >> shift
        self.add(f"adc +sat {in_bits}b", (q > adc_max).sum())
        self.add(f"adc -sat {in_bits}b", (q < -adc_max).sum())
        self.add("adc +max", (q == adc_max).sum())
        self.add("adc -max", (q == -adc_max).sum())
        tie = (v & ((1 << shift) - 1)) == (1 << (shift - 1))  # & on two's complement: v mod 2**shift
        self.add("adc tie", (tie & (q > -adc_max) & (q <= adc_max)).sum())

    def tile_sum(self, codes: torch.Tensor, tiles: int, adc_max: int) -> None:
        if tiles > 1:
            self.add("tile-sum +max", (codes == tiles * adc_max).sum())
            self.add("tile-sum -max", (codes == -tiles * adc_max).sum())

    def postproc(self, acc: torch.Tensor, y: torch.Tensor, shift: int, lo: int, hi: int, d: LayerDescriptor) -> None:
        """`acc` before rounding, `y` after the shift and before the clamp lo..hi; `shift` = shift_L + f."""
        if shift:
            tie = (acc & ((1 << shift) - 1)) == (1 << (shift - 1))
            self.add("pp tie", (tie & (y - 1 >= lo) & (y <= hi)).sum())
        if d.to_out:
            self.add("out >max", (y > hi).sum())
            self.add("out relu<0" if d.relu else "out <min", (y < lo).sum())
        else:
            self.add(f"act >max {d.out_bits}b", (y > hi).sum())
            self.add("act <0", (y < lo).sum())


class AdcTransfer:
    """Fixed-gain ADC: code = clip(floor((I*mult*2**(dac_bits-bits) + n*noise_mult + 2**(shift-1)) / 2**shift)).

    The 2**(dac_bits-bits) factor is the integrator gain step that keeps full-scale input at full
    scale for every activation precision; the gain is otherwise the same for all layers. The
    arithmetic is the one definition in aoncim/adc.py (`cfg.adc_transfer.transfer`), here on torch
    int64 tensors.
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        self.transfer = cfg.adc_transfer

    def __call__(self, col_sum: torch.Tensor, noise_raw: torch.Tensor, in_bits: int,
                 events: DatapathEvents | None = None) -> torch.Tensor:
        if events is not None:
            t = self.transfer
            events.adc(t.before_shift(col_sum, noise_raw, in_bits), t, in_bits)
        return self.transfer.transfer(col_sum, noise_raw, in_bits)


class PostProcessing:
    """Per-channel requantisation with the layer's drift-compensation constant alpha (f = alpha_frac_bits):

        y = (code*alpha*scale + (bias << f) + 2**(shift+f-1)) >> (shift+f), then clamp.

    One rounding at the end; with alpha = 1.0 (2**f) this is exactly
    (code*scale + bias + 2**(shift-1)) >> shift.
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg

    def __call__(self, code: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, d: LayerDescriptor,
                 alpha: int | None = None, events: DatapathEvents | None = None) -> torch.Tensor:
        f = self.cfg.alpha_frac_bits
        a = self.cfg.alpha_one if alpha is None else int(alpha)
        acc = code * a * scale + (bias << f)
        y = (acc + ((1 << (d.shift + f - 1)) if d.shift + f else 0)) >> (d.shift + f)
        if d.to_out:
            lo, hi = (0 if d.relu else -(1 << (self.cfg.out_bits - 1))), (1 << (self.cfg.out_bits - 1)) - 1
        else:
            lo, hi = 0, (1 << d.out_bits) - 1
        if events is not None:
            events.postproc(acc, y, d.shift + f, lo, hi, d)
        return y.clamp(lo, hi)


def im2col(x_nhwc: torch.Tensor, d: LayerDescriptor) -> torch.Tensor:
    """(N, H, W, C) activation codes -> (N, positions, k_h*k_w*C) rows in (ky, kx, c) order, padded
    with `pad_code` (the input's zero point: 0 for an unsigned map) pad_h rows above and below and
    pad_w columns beside."""
    x = torch.nn.functional.pad(x_nhwc, (0, 0, d.pad_w, d.pad_w, d.pad_h, d.pad_h), value=d.pad_code)
    p = x.unfold(1, d.k_h, d.stride).unfold(2, d.k_w, d.stride)  # (N, oh, ow, C, kh, kw)
    p = p[:, : d.out_h, : d.out_w].permute(0, 1, 2, 4, 5, 3)     # (N, oh, ow, kh, kw, C)
    return p.reshape(x.shape[0], d.out_h * d.out_w, d.k_h * d.k_w * d.in_c)


def pool_windows(x_nhwc: torch.Tensor, d: LayerDescriptor) -> torch.Tensor:
    """(N, H, W, C) -> (N, oh, ow, C, kh*kw): the window of every output position, per channel,
    elements (ky, kx) row-major; positions in the padding (pad_h above and below, pad_w beside:
    only a depthwise layer has any) read `pad_code`."""
    if d.pad_h or d.pad_w:
        x_nhwc = torch.nn.functional.pad(x_nhwc, (0, 0, d.pad_w, d.pad_w, d.pad_h, d.pad_h), value=d.pad_code)
    p = x_nhwc.unfold(1, d.k_h, d.stride).unfold(2, d.k_w, d.stride)  # (N, oh, ow, C, kh, kw)
    return p[:, : d.out_h, : d.out_w].reshape(x_nhwc.shape[0], d.out_h, d.out_w, d.in_c, -1)


def dw_kernel(dw_weights: np.ndarray, d: LayerDescriptor) -> torch.Tensor:
    """A depthwise layer's weights as (C, kh*kw), from the DWW content: channel c's weight of
    element (ky, kx) is word w_base + (ky*k_w + kx)*in_c + c."""
    w = np.asarray(dw_weights, dtype=np.int64)[d.w_base : d.w_base + d.k_h * d.k_w * d.in_c]
    return torch.from_numpy(w.reshape(d.k_h * d.k_w, d.in_c).T.copy())


def dwconv_sums(x_nhwc: torch.Tensor, d: LayerDescriptor, dw_weights: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) codes -> (N, oh, ow, C): the depthwise window sums S = sum over (ky, kx) of
    x[c, iy, ix] * w[c, ky, kx] (contract step 8a), exact in int64."""
    return (pool_windows(x_nhwc, d) * dw_kernel(dw_weights, d)).sum(-1)


@dataclass
class LayerTrace:
    """Integer results of one layer for a batch: outputs (N, H, W, C) (activation codes, or signed
    outputs of a to_out layer), and for MVM layers the ADC codes that enter post-processing
    (N, positions, out_c; summed over the row tiles of a tiled layer) and the exact column sums
    (N, positions, out_c; for a layer of T > 1 row tiles, per tile: N, positions, T, out_c); for
    average pooling, the residual add and depthwise layers the window sums that enter
    post-processing (N, positions, out_c)."""

    output: torch.Tensor
    adc_codes: torch.Tensor | None = None
    col_sums: torch.Tensor | None = None
    sums: torch.Tensor | None = None


class BitTrueExecutor:
    """Runs a Program on integer inputs exactly as the chip does, layer by layer.

    Column sums are formed with a float64 matrix product: every operand and partial sum is an
    integer below 2**53 (|sum| <= rows * dac_max * gcode_max), so the product is exact whatever the
    summation order, and BLAS makes batched evaluation of whole test sets practical.
    """

    def __init__(self, cfg: AonCimConfig, program: Program, events: DatapathEvents | None = None):
        """`events`: count the datapath's corner cases of every run into it (DatapathEvents; off
        by default, the plain arithmetic is faster)."""
        program.check(cfg)
        if cfg.rows * cfg.dac_max * cfg.gcode_max >= 2**53:
            raise ValueError("column sums could exceed 2**53: float64 evaluation would not be exact")
        self.cfg = cfg
        self.program = program
        self.adc = AdcTransfer(cfg)
        self.pp = PostProcessing(cfg)
        self.events = events
        self._alpha = program.alphas(cfg)
        self._g = torch.from_numpy((program.g_plus.astype(np.int64) - program.g_minus.astype(np.int64)).astype(np.float64))

    def run(self, x_hwc: np.ndarray | torch.Tensor, seed: int, mvm_base: int = 0) -> list[LayerTrace]:
        """One inference: input (H, W, C) codes, read-noise seed -> per-layer traces without batch axis."""
        traces = self.run_batch(torch.as_tensor(np.asarray(x_hwc))[None], [seed], mvm_base)
        return [LayerTrace(*(None if v is None else v[0] for v in (t.output, t.adc_codes, t.col_sums, t.sums)))
                for t in traces]

    def run_batch(self, x_nhwc: np.ndarray | torch.Tensor, seeds, mvm_base: int = 0) -> list[LayerTrace]:
        """A batch of inferences, each with its own read-noise seed (the NOISE_SEED of its run);
        `mvm_base` is the read-noise MVM counter of the first MVM (the MVM_BASE register)."""
        first = self.program.layers[0]
        x = torch.as_tensor(np.asarray(x_nhwc), dtype=torch.int64)
        expect = (first.in_h, first.in_w, first.in_c)
        if x.dim() != 4 or tuple(x.shape[1:]) != expect:
            raise ValueError(f"input shape {tuple(x.shape[1:]) if x.dim() == 4 else tuple(x.shape)} != {expect} "
                             "(H, W, C) expected by layer 0")
        if x.numel() and (x.min() < 0 or x.max() >= (1 << first.in_bits)):
            raise ValueError(f"input codes must lie in 0..{(1 << first.in_bits) - 1} ({first.in_bits}-bit)")
        seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
        if len(seeds) != x.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for {x.shape[0]} inputs: give one read-noise seed per input")
        n, mem = x.shape[0], self._banks(x)
        traces, mvm0 = [], int(mvm_base)
        for i, d in enumerate(self.program.layers):
            xin = self._read(mem, d)
            if d.is_mvm:
                trace = self._mvm(xin, d, seeds, mvm0, int(self._alpha[i]))
                mvm0 += d.mvms(self.cfg.rows)
            elif d.op.uses_dww:
                trace = self._dwconv(xin, d, int(self._alpha[i]))
            else:
                trace = self._pool(xin, d, int(self._alpha[i]))
            traces.append(trace)
            self._write(mem, d, trace.output)
        return traces

    def layer_input(self, x_nhwc, traces: list[LayerTrace], i: int) -> torch.Tensor:
        """Layer i's input (N, H, W, C) as the banks held it when it ran: the host's input and the
        outputs (`traces` of `run_batch`) of the layers before it, written where their descriptors say."""
        mem = self._banks(torch.as_tensor(np.asarray(x_nhwc), dtype=torch.int64))
        for d, t in zip(self.program.layers[:i], traces):
            self._write(mem, d, t.output)
        return self._read(mem, self.program.layers[i])

    # The two activation banks, as on the chip: each layer reads its input where the descriptor
    # says and writes its output there, so a layer may read any earlier output still in memory
    # (a residual add's skip operand). Only the words the program touches are held.
    def _banks(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        n, mem, layers = x.shape[0], {}, self.program.layers
        for b in (0, 1):
            ends = [d.in_base + d.in_h * d.in_w * d.in_c for d in layers if d.in_bank == b] + \
                   [d.out_base + d.positions * d.out_c for d in layers if d.out_bank == b and not d.to_out]
            mem[b] = torch.zeros((n, max(ends, default=0)), dtype=torch.int64)
        bank, base, words = self.program.input_region
        mem[bank][:, base : base + words] = x.reshape(n, -1)
        return mem

    @staticmethod
    def _read(mem: dict[int, torch.Tensor], d: LayerDescriptor) -> torch.Tensor:
        n = mem[d.in_bank].shape[0]
        return mem[d.in_bank][:, d.in_base : d.in_base + d.in_h * d.in_w * d.in_c].reshape(n, d.in_h, d.in_w, d.in_c)

    @staticmethod
    def _write(mem: dict[int, torch.Tensor], d: LayerDescriptor, out: torch.Tensor) -> None:
        if not d.to_out:
            mem[d.out_bank][:, d.out_base : d.out_base + d.positions * d.out_c] = out.reshape(out.shape[0], -1)

    def _params(self, d: LayerDescriptor) -> tuple[torch.Tensor, torch.Tensor]:
        ps = slice(d.param_base, d.param_base + d.out_c)
        return (torch.as_tensor(self.program.pp_scale[ps], dtype=torch.int64),
                torch.as_tensor(self.program.pp_bias[ps], dtype=torch.int64))

    def _mvm(self, x: torch.Tensor, d: LayerDescriptor, seeds: np.ndarray, mvm0: int, alpha: int) -> LayerTrace:
        cfg, n = self.cfg, x.shape[0]
        rows = im2col(x, d).to(torch.float64)
        tiles = d.tile_rects(cfg.rows)
        codes, col_sums = None, []
        # Row tiles (contract step 12): each tile is its own array MVM, converted separately with its
        # own read-noise counter mvm0 + position*T + t; the codes are summed exactly.
        for t, (lo, h, r0, c0) in enumerate(tiles):
            g = self._g[r0 : r0 + h, c0 : c0 + d.out_c]
            sums = (rows[..., lo : lo + h] @ g).to(torch.int64)  # (N, positions, out_c), exact
            if cfg.read_noise_lsb > 0:
                mvm = mvm0 + t + len(tiles) * np.arange(d.positions, dtype=np.int64)[:, None]
                col = np.arange(d.out_c, dtype=np.int64)[None, :] + c0
                noise = torch.from_numpy(np.stack([ReadNoise(cfg, int(s)).raw(mvm, col) for s in seeds]))
            else:
                noise = torch.zeros_like(sums)
            tile_codes = self.adc(sums, noise, d.in_bits, self.events)
            codes = tile_codes if codes is None else codes + tile_codes
            col_sums.append(sums)
        if self.events is not None:
            self.events.tile_sum(codes, len(tiles), cfg.adc_max)
        scale, bias = self._params(d)
        y = self.pp(codes, scale, bias, d, alpha, self.events).reshape(n, d.out_h, d.out_w, d.out_c)
        return LayerTrace(y, codes, col_sums[0] if len(tiles) == 1 else torch.stack(col_sums, dim=2))

    def _dwconv(self, x: torch.Tensor, d: LayerDescriptor, alpha: int) -> LayerTrace:
        """Depthwise convolution (contract step 8a): the weighted window sums through post-processing."""
        scale, bias = self._params(d)
        s = dwconv_sums(x, d, self.program.dw_weights)
        return LayerTrace(self.pp(s, scale, bias, d, alpha, self.events), sums=s.reshape(x.shape[0], -1, d.out_c))

    def _pool(self, x: torch.Tensor, d: LayerDescriptor, alpha: int) -> LayerTrace:
        win = pool_windows(x, d)
        if d.op.keeps_bits:  # max pooling: the codes pass through
            return LayerTrace(win.amax(-1))
        scale, bias = self._params(d)
        s = win.sum(-1)
        return LayerTrace(self.pp(s, scale, bias, d, alpha, self.events), sums=s.reshape(x.shape[0], -1, d.out_c))
