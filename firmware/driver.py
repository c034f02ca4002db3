"""Host driver: the one API through which testbenches (and a real host port) talk to the chip.

The driver is written against a minimal async bus protocol so the same code runs over a cocotb
AXI4-Lite master in simulation or over an MCU's memory-mapped bus.

It also runs the host's drift-compensation routine (contract steps 10 and 11) on the chip:
`calibrate_reference` right after programming, `compensate` at time t. The read plans and all the
arithmetic are those of the golden model (`aoncim.model.snapshot`); only the measurement differs:
here each `CalibRead` runs as calibration MVMs on the chip (`measure`).
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Awaitable, Callable, Protocol, Sequence

import numpy as np

from aoncim.config import AonCimConfig
from aoncim.model.snapshot import (CALIB_READS, CalibRead, CalibReference, alpha_from, bias_from, drift_reads,
                                   offset_reads, reference_from, reference_reads)
from aoncim.program import DESCRIPTOR_FIELDS, LayerDescriptor, Op, Program
from aoncim.regmap import (ACT_PACK_CODES, CHIP_ID, CTRL_CONTINUE, CTRL_START, CTRL_STEP, IRQ_DONE, IRQ_ERROR,
                           IRQ_PAUSED, ST_DONE, ST_ERROR, AddressMap, ErrorCode, Reg, Region, can_pack_act)

_STRIDE_MAX = (1 << dict(DESCRIPTOR_FIELDS)["stride"]) - 1


class HostBus(Protocol):
    async def write_words(self, addr: int, words: list[int]) -> None: ...
    async def read_words(self, addr: int, n: int) -> list[int]: ...
    async def wait_irq(self) -> None: ...


class ChipError(RuntimeError):
    """The chip reported an error or is not the chip the program was compiled for."""


class AonCimDriver:
    def __init__(self, bus: HostBus, cfg: AonCimConfig):
        self.bus = bus
        self.cfg = cfg
        self.amap = AddressMap(cfg)

    async def reg_read(self, reg: Reg) -> int:
        return (await self.bus.read_words(self.amap.reg(reg), 1))[0]

    async def reg_write(self, reg: Reg, value: int) -> None:
        await self.bus.write_words(self.amap.reg(reg), [value & 0xFFFFFFFF])

    async def check_identity(self) -> None:
        chip_id = await self.reg_read(Reg.ID)
        if chip_id != CHIP_ID:
            raise ChipError(f"chip ID {chip_id:#010x} != {CHIP_ID:#010x}: not an AON-CiM register map v1")
        h = await self.reg_read(Reg.CONFIG_HASH)
        if h != self.cfg.config_hash:
            raise ChipError(f"chip was generated for config hash {h:#010x}, the program targets "
                            f"{self.cfg.config_hash:#010x}: regenerate the RTL or recompile for its config")

    async def write_alpha(self, alpha: Sequence[int], first_layer: int = 0) -> None:
        """Load drift-compensation constants (fixed point, cfg.alpha_frac_bits fractional bits) for
        layers first_layer, first_layer+1, ...: what the host's compensation routine does after
        each calibration. Takes effect from the next layer the chip starts."""
        a = [int(v) for v in np.asarray(alpha, dtype=np.int64).reshape(-1)]
        if first_layer < 0 or first_layer + len(a) > self.cfg.max_layers:
            raise ValueError(f"alpha for layers {first_layer}..{first_layer + len(a) - 1}: "
                             f"the chip has {self.cfg.max_layers} alpha registers")
        bad = [v for v in a if not 0 <= v < 1 << self.cfg.alpha_bits]
        if bad:
            raise ValueError(f"alpha {bad[0]} outside 0..2**{self.cfg.alpha_bits}-1 (alpha_bits)")
        await self.bus.write_words(self.amap.alpha(first_layer), a)

    async def read_alpha(self, n: int, first_layer: int = 0) -> list[int]:
        return await self.bus.read_words(self.amap.alpha(first_layer), n)

    async def load_descriptors(self, layers: Sequence[LayerDescriptor], num_layers: int | None = None) -> None:
        """Write descriptors and NUM_LAYERS (default: len(layers)) without checking them: for a host
        that patches a loaded program, and for tests of the chip's own descriptor checks."""
        if len(layers) > self.cfg.max_layers:
            raise ValueError(f"{len(layers)} descriptors; the program memory holds {self.cfg.max_layers}")
        await self.bus.write_words(self.amap.base(Region.PROGRAM), [w for d in layers for w in d.pack()])
        await self.reg_write(Reg.NUM_LAYERS, len(layers) if num_layers is None else num_layers)

    async def load_program(self, prog: Program) -> None:
        prog.check(self.cfg)
        base = self.amap.base
        await self.bus.write_words(base(Region.SCALE), [int(v) & 0xFFFFFFFF for v in prog.pp_scale])
        await self.bus.write_words(base(Region.BIAS), [int(v) & 0xFFFFFFFF for v in prog.pp_bias])
        # Only the placed rectangles are written: the rest of the array keeps its reset codes.
        for i in range(len(prog.layers)):
            row0, nrows, col0, ncols = prog.used_rect(i)
            for r in range(row0, row0 + nrows):
                gp, gm = prog.g_plus[r, col0 : col0 + ncols], prog.g_minus[r, col0 : col0 + ncols]
                await self.bus.write_words(self.amap.gcode(r, col0),
                                           [self.amap.pack_pair(int(p), int(q)) for p, q in zip(gp, gm)])
        await self.write_dw_weights(prog)
        await self.write_alpha(prog.alphas(self.cfg))
        await self.load_descriptors(prog.layers)

    async def write_dw_weights(self, prog: Program) -> None:
        """The program's depthwise weights (`Program.dw_weights`) into the DWW window, one signed
        weight a word: the words its depthwise layers read (`Program.dw_ranges`); the rest of the
        DWW keeps what it held (no layer of the program reads it)."""
        if prog.dw_weights is None:
            return
        for lo, n in prog.dw_ranges():
            await self.bus.write_words(self.amap.base(Region.DWW) + 4 * lo,
                                       [int(v) & 0xFFFFFFFF for v in prog.dw_weights[lo : lo + n]])

    async def read_dw_weights(self, base: int, n: int) -> np.ndarray:
        """n signed weights of the DWW window from `base`."""
        words = await self.bus.read_words(self.amap.base(Region.DWW) + 4 * base, n)
        return np.array(words, dtype=np.uint32).view(np.int32).astype(np.int64)

    async def write_input(self, prog: Program, x_hwc: np.ndarray) -> None:
        d = prog.layers[0]
        if x_hwc.shape != (d.in_h, d.in_w, d.in_c):
            raise ValueError(f"input shape {x_hwc.shape} != {(d.in_h, d.in_w, d.in_c)} (H, W, C)")
        region = Region.ACT1 if d.in_bank else Region.ACT0
        await self.bus.write_words(self.amap.base(region) + 4 * d.in_base, [int(v) for v in x_hwc.reshape(-1)])

    async def read_layer_output(self, d: LayerDescriptor) -> np.ndarray:
        n = d.out_h * d.out_w * d.out_c
        if d.to_out:
            words = await self.bus.read_words(self.amap.base(Region.OUT) + 4 * d.out_base, n)
            vals = np.array(words, dtype=np.uint32).view(np.int32).astype(np.int64)
        else:
            vals = await self.read_act(d.out_bank, d.out_base, n)
        return vals.reshape(d.out_h, d.out_w, d.out_c)

    async def read_act(self, bank: int, base: int, n: int) -> np.ndarray:
        """n activation codes of bank `bank` from `base`: four to a word (Reg.ACT_PACK) where the
        chip can pack them, so a layer's read-back takes a quarter of the bus transactions; the
        pack bit is cleared again so other readers of the window see one code a word."""
        region = Region.ACT1 if bank else Region.ACT0
        if not can_pack_act(self.cfg) or n < 2 * ACT_PACK_CODES:  # two words or less: not worth the two writes
            return np.array(await self.bus.read_words(self.amap.base(region) + 4 * base, n), dtype=np.int64)
        p = ACT_PACK_CODES
        first, last = base // p, (base + n - 1) // p
        await self.reg_write(Reg.ACT_PACK, 1)
        words = await self.bus.read_words(self.amap.base(region) + 4 * first, last - first + 1)
        await self.reg_write(Reg.ACT_PACK, 0)
        codes = np.array(words, dtype='<u4').view(np.uint8).astype(np.int64)  # code 4i+k: byte k
        return codes[base - first * p: base - first * p + n]

    async def write_input_words(self, bank: int, base: int, codes: np.ndarray) -> None:
        region = Region.ACT1 if bank else Region.ACT0
        await self.bus.write_words(self.amap.base(region) + 4 * base, [int(v) for v in np.asarray(codes).reshape(-1)])

    async def read_out(self, base: int, n: int) -> np.ndarray:
        """n signed words of the output memory from `base`."""
        words = await self.bus.read_words(self.amap.base(Region.OUT) + 4 * base, n)
        return np.array(words, dtype=np.uint32).view(np.int32).astype(np.int64)

    async def read_memories(self, dww: bool = False) -> dict[str, np.ndarray]:
        """Every word of both activation banks (packed, four codes a bus read, where the chip can)
        and of the output memory (signed), by window name: what a layer may have written; with
        `dww`, also every weight of the depthwise weight memory (signed; what a program loads)."""
        c = self.cfg
        out = {"ACT0": await self.read_act(0, 0, c.act_depth), "ACT1": await self.read_act(1, 0, c.act_depth),
               "OUT": await self.read_out(0, c.out_depth)}
        if dww:
            out["DWW"] = await self.read_dw_weights(0, c.dw_depth)
        return out

    @staticmethod
    def error_message(status: int, prog: Program | None = None) -> str:
        """One line for a STATUS word with ERROR set: the layer and what is wrong with it."""
        code, layer = (status >> 16) & 0xFF, (status >> 8) & 0xFF
        if code in (ErrorCode.NO_LAYERS, ErrorCode.TOO_MANY_LAYERS):
            where = "at start"
        else:
            where = f"in layer {layer}" + (f" ({prog.layer_name(layer)})" if prog is not None else "")
        return f"chip stopped with error {code} {where}: {ErrorCode.describe(code)}"

    async def run(self, prog: Program, seed: int,
                  on_layer: Callable[[int, np.ndarray], Awaitable[object] | object] | None = None,
                  mvm_base: int = 0) -> dict:
        """Start one inference and wait for it. With `on_layer`, pause after every layer and hand
        its output to the callback (layer-by-layer comparison); returns cycles and MVMs.
        `mvm_base` is the read-noise MVM counter of the first MVM (MVM_BASE, written every run so
        a calibration's base never leaks into an inference): 0 for inferences."""
        step = on_layer is not None
        await self.reg_write(Reg.NOISE_SEED, seed)
        await self.reg_write(Reg.MVM_BASE, mvm_base)
        await self.reg_write(Reg.IRQ_STATUS, IRQ_DONE | IRQ_PAUSED | IRQ_ERROR)
        await self.reg_write(Reg.IRQ_ENABLE, IRQ_DONE | IRQ_PAUSED | IRQ_ERROR)
        await self.reg_write(Reg.CTRL, CTRL_START | (CTRL_STEP if step else 0))
        layer = 0
        while True:
            await self.bus.wait_irq()
            irq = await self.reg_read(Reg.IRQ_STATUS)
            await self.reg_write(Reg.IRQ_STATUS, irq)
            status = await self.reg_read(Reg.STATUS)
            if irq & IRQ_ERROR or status & ST_ERROR:
                raise ChipError(self.error_message(status, prog))
            if step:
                out = await self.read_layer_output(prog.layers[layer])
                res = on_layer(layer, out)
                if inspect.isawaitable(res):
                    await res
            layer += 1
            if irq & IRQ_DONE or status & ST_DONE:
                break
            await self.reg_write(Reg.CTRL, CTRL_CONTINUE | CTRL_STEP)
        if step and layer != len(prog.layers):
            raise ChipError(f"chip reported done after {layer} of {len(prog.layers)} layers")
        return {"cycles": await self.reg_read(Reg.CYCLES), "mvms": await self.reg_read(Reg.MVMS)}

    # ------------------------------------------------------------------ drift compensation
    def calibration_plan(self, d: LayerDescriptor) -> tuple[int, list[tuple[int, int]]]:
        """How `measure` reads MVM layer `d`: (reads per run, column chunks (first column, width)).

        A run is one calibration layer whose output positions are consecutive reads (see
        `calibration_layer`); it writes its codes to the output memory, so a run holds at most
        out_depth codes, and its input (reads * k_rows codes) must fit an activation bank."""
        c = self.cfg
        tiles = d.tiles(c.rows)
        width = min(d.out_c, c.out_depth)
        if tiles > 1 and width < d.out_c:
            # A tiled layer's tiles sit out_c columns apart: a narrower calibration layer would
            # read the wrong columns of its later tiles.
            raise ValueError(f"cannot calibrate a layer of {tiles} row tiles x {d.out_c} columns: its codes "
                             f"exceed the output memory (out_depth={c.out_depth})")
        reads = min(CALIB_READS, c.out_depth // width, c.act_depth // d.k_rows)
        if d.k_w > _STRIDE_MAX:  # consecutive reads are k_w columns apart: the stride field must hold it
            reads = min(reads, 1)
        if reads < 1:
            raise ValueError(f"cannot calibrate a layer of {d.k_rows} rows: its input exceeds act_depth={c.act_depth}")
        return reads, [(lo, min(width, d.out_c - lo)) for lo in range(0, d.out_c, width)]

    def calibration_layer(self, d: LayerDescriptor, reads: int, col_lo: int, width: int) -> LayerDescriptor:
        """One MVM layer that reads columns col_lo..col_lo+width-1 of layer `d` (all its row tiles)
        `reads` times: its input is `reads` copies of a k_h x k_w x in_c block side by side (stride
        k_w, so output position p's im2col vector is the block), its output goes to the output
        memory through post-processing parameters with scale 1, bias 0, shift 0 in the last
        `width` entries (`measure` writes them), so each output is the ADC code (summed over tiles)."""
        c = self.cfg
        return LayerDescriptor(
            opcode=Op.MVM.value, in_bits=d.in_bits, out_bits=d.out_bits, stride=d.k_w if reads > 1 else 1, pad_h=0,
            pad_w=0, relu=0, to_out=1, in_bank=0, out_bank=0, shift=0, in_h=d.k_h, in_w=reads * d.k_w, in_c=d.in_c,
            k_h=d.k_h, k_w=d.k_w, out_h=1, out_w=reads, out_c=width, k_rows=d.k_rows, row0=d.row0,
            col0=d.col0 + col_lo, param_base=c.param_depth - width, in_base=0, out_base=0)

    async def measure(self, prog: Program, read: CalibRead) -> np.ndarray:
        """Run `read` on the chip: (CALIB_READS, out_c) ADC codes of layer `read.layer`.

        Read k of a layer with T row tiles must convert tile t at MVM counter base + k*T + t: a
        run of calibration positions from MVM_BASE = base + k0*T does exactly that. Clobbers the
        descriptors, layer 0's alpha, the last post-processing entries, activation bank 0 and the
        output memory; `calibrate_reference` and `compensate` restore the program."""
        c = self.cfg
        d = prog.layers[read.layer]
        if not d.is_mvm:
            raise ValueError(f"layer {read.layer} ({prog.layer_name(read.layer)}) is not an MVM layer")
        if (d.tiles(c.rows) * c.adc_max).bit_length() + 1 > c.out_bits:
            raise ValueError(f"out_bits={c.out_bits} cannot hold layer {read.layer}'s ADC codes (summed over "
                             f"{d.tiles(c.rows)} row tiles): the chip cannot report its calibration reads")
        reads, chunks = self.calibration_plan(d)
        width = max(w for _, w in chunks)
        base = self.amap.base
        lo = c.param_depth - width
        await self.bus.write_words(base(Region.SCALE) + 4 * lo, [1] * width)
        await self.bus.write_words(base(Region.BIAS) + 4 * lo, [0] * width)
        await self.write_alpha([c.alpha_one])
        block = np.asarray(read.x, dtype=np.int64).reshape(d.k_h, d.k_w, d.in_c)
        tiles = d.tiles(c.rows)
        codes = np.zeros((CALIB_READS, d.out_c), dtype=np.int64)
        for col_lo, w in chunks:
            for k0 in range(0, CALIB_READS, reads):
                n = min(reads, CALIB_READS - k0)
                cal = self.calibration_layer(d, n, col_lo, w)
                await self.load_descriptors([cal])
                await self.write_input_words(0, 0, np.tile(block, (1, n, 1)))
                name = f"calibration read of layer {read.layer} ({prog.layer_name(read.layer)})"
                try:
                    await self.run(dataclasses.replace(prog, layers=[cal], names=[name]), read.seed,
                                   mvm_base=(read.base + k0 * tiles) & 0xFFFFFFFF)
                except ChipError as e:
                    raise ChipError(f"{e} (calibration descriptor {cal})") from None
                codes[k0 : k0 + n, col_lo : col_lo + w] = (await self.read_out(0, n * w)).reshape(n, w)
        return codes

    async def _restore(self, prog: Program) -> None:
        """Put back what `measure` clobbered: descriptors, alphas and post-processing parameters."""
        c, base = self.cfg, self.amap.base
        await self.load_descriptors(prog.layers)
        await self.write_alpha(prog.alphas(c))
        await self.bus.write_words(base(Region.SCALE), [int(v) & 0xFFFFFFFF for v in prog.pp_scale])
        await self.bus.write_words(base(Region.BIAS), [int(v) & 0xFFFFFFFF for v in prog.pp_bias])

    async def calibrate_reference(self, prog: Program, seed: int = 0) -> CalibReference:
        """Contract step 10 right after programming: read every MVM layer of the loaded `prog`
        (whose conductances the chip holds) with its calibration code; keep the result for
        `compensate`. Restores the program."""
        reads = reference_reads(prog, self.cfg, seed)
        measured = [await self.measure(prog, r) for r in reads]
        await self._restore(prog)
        return reference_from(prog, self.cfg, reads, measured)

    async def compensate(self, prog: Program, ref: CalibReference, seed: int = 0,
                         target: Program | None = None) -> Program:
        """Contract steps 10 and 11 at time t on the loaded `prog`: measure r_t, set each layer's
        alpha = r0 / r_t and, given the compiled `target` (with calib_codes), correct the biases
        for each column's offset; write both to the chip and restore the program. Returns `prog`
        with the new alphas and biases -- what `aoncim.model.snapshot.compensated` computes."""
        c = self.cfg
        reads = drift_reads(prog, ref, seed)
        out = dataclasses.replace(prog, alpha=alpha_from(prog, c, ref, reads, [await self.measure(prog, r) for r in reads]))
        if target is not None and target.calib_codes is not None:
            reads = offset_reads(target, seed)
            out = dataclasses.replace(out, pp_bias=bias_from(target, out, c, reads,
                                                             [await self.measure(prog, r) for r in reads]))
        await self._restore(out)
        return out
