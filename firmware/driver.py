"""Host driver: the one API through which testbenches (and a real host port) talk to the chip.

The driver is written against a minimal async bus protocol so the same code runs over a cocotb
AXI4-Lite master in simulation or over an MCU's memory-mapped bus.
"""
from __future__ import annotations

import inspect
from typing import Awaitable, Callable, Protocol, Sequence

import numpy as np

from aoncim.config import AonCimConfig
from aoncim.program import LayerDescriptor, Program
from aoncim.regmap import (CHIP_ID, CTRL_CONTINUE, CTRL_START, CTRL_STEP, IRQ_DONE, IRQ_ERROR, IRQ_PAUSED,
                           ST_DONE, ST_ERROR, AddressMap, ErrorCode, Reg, Region)


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
        await self.write_alpha(prog.alphas(self.cfg))
        await self.load_descriptors(prog.layers)

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
            region = Region.ACT1 if d.out_bank else Region.ACT0
            vals = np.array(await self.bus.read_words(self.amap.base(region) + 4 * d.out_base, n), dtype=np.int64)
        return vals.reshape(d.out_h, d.out_w, d.out_c)

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
                  on_layer: Callable[[int, np.ndarray], Awaitable[object] | object] | None = None) -> dict:
        """Start one inference and wait for it. With `on_layer`, pause after every layer and hand
        its output to the callback (layer-by-layer comparison); returns cycles and MVMs."""
        step = on_layer is not None
        await self.reg_write(Reg.NOISE_SEED, seed)
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
