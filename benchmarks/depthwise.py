"""Depthwise convolutions on an analog array: the three ways to run them, measured on the MLPerf Tiny
models that have them (DS-CNN for KWS, MobileNetV1-0.25 for VWW).

- **block-diagonal** (`depthwise="array"`): one MVM layer per depthwise layer, its k^2*C x C
  rectangle holding each channel's k^2 weights on that channel's im2col rows. Cells, cycles and
  energy are measured on the compiled program with the cycle model (equal to the RTL's CYCLES) and
  the energy model.
- **side by side**: each channel its own k^2 x 1 rectangle (no wasted cells), one MVM per channel
  and position (C times the MVMs: every one a full PWM window). Cycles from the same schedule model
  (one ADC slot per MVM, loads hidden); energy from the same per-MVM terms: the rows driven, the
  columns converted and the conducting devices are the same as block-diagonal's, so the analog
  energy is the same; only the control and leakage over the longer run grow.
- **digital** (the default since the depthwise engine, `Op.DWCONV`): a multiply-accumulate per
  pooling lane in the periphery (load_lanes channels a cycle, k^2 cycles per position and group,
  like average pooling) with 8-bit weights in the DWW memory: no array cells. Measured on the
  compiled program with the same models.

`python benchmarks/depthwise.py` prints the table of docs/performance.md ("Depthwise
convolutions").
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


# Configs on which the block-diagonal rectangles fit (the digital engine needs no array for them).
ARRAY_FIT = {"mlperf-vww": dict(rows=2048, cols=2048)}


def measure(name: str, act_bits: int = 8) -> list[dict]:
    """Per depthwise layer of MLPerf model `name`: cells, cycles and energy of the block-diagonal
    MVM (compiled with depthwise="array") and of the depthwise engine (depthwise="digital", the
    default), both measured with the cycle and energy models, and the side-by-side estimate."""
    import dataclasses

    from aoncim.firmware.compiler import compile_network
    from aoncim.model import mlperf
    from aoncim.perf.cycles import layer_cycles
    from aoncim.perf.energy import energy_report
    from aoncim.program import Op

    m = mlperf.get(name)
    cfg_d = m.config()
    cfg_a = dataclasses.replace(cfg_d, **ARRAY_FIT.get(name, {}))
    net, calib = m.build(0), m.inputs(64, 1)
    digital = compile_network(net, cfg_d, calib, act_bits, depthwise="digital")
    array = compile_network(net, cfg_a, calib, act_bits, depthwise="array")
    rep_d, rep_a = energy_report(cfg_d, digital), energy_report(cfg_a, array)
    rows = []
    for i, d in enumerate(digital.layers):
        if d.op is not Op.DWCONV:
            continue
        a = array.layers[i]
        kk, C, P = d.k_h * d.k_w, d.out_c, d.positions
        ea = rep_a.layers[i]
        per_cycle = ea.energy_j["control"] + ea.energy_j["static"]
        side_cycles = P * C * (2**a.in_bits + 1) + 6  # C MVMs of k^2 rows and one column per position
        rows.append(dict(layer=digital.names[i], C=C, positions=P,
                         rect=a.tiles(cfg_a.rows) * min(a.k_rows, cfg_a.rows) * C, used=kk * C,
                         block_cycles=layer_cycles(cfg_a, a), block_uj=ea.total_j * 1e6,
                         side_cycles=side_cycles,
                         side_uj=(ea.total_j + per_cycle * (side_cycles / layer_cycles(cfg_a, a) - 1)) * 1e6,
                         digital_cycles=layer_cycles(cfg_d, d), digital_uj=rep_d.layers[i].total_j * 1e6))
    return rows


def table(rows: list[dict], title: str) -> str:
    head = ("| layer | C | positions | cells used / rectangle | block-diagonal cycles, µJ | side by side cycles, µJ "
            "| digital cycles, µJ |\n|---|---|---|---|---|---|---|")
    body = [f"| {r['layer']} | {r['C']} | {r['positions']} | {r['used']:,} / {r['rect']:,} "
            f"({100 * r['used'] / r['rect']:.1f} %) | {r['block_cycles']:,}, {r['block_uj']:.3f} | "
            f"{r['side_cycles']:,}, {r['side_uj']:.3f} | {r['digital_cycles']:,}, {r['digital_uj']:.4f} |"
            for r in rows]
    tot = {k: sum(r[k] for r in rows) for k in ("used", "rect", "block_cycles", "block_uj", "side_cycles", "side_uj",
                                               "digital_cycles", "digital_uj")}
    body.append(f"| **all** | | | {tot['used']:,} / {tot['rect']:,} ({100 * tot['used'] / tot['rect']:.2f} %) | "
                f"{tot['block_cycles']:,}, {tot['block_uj']:.3f} | {tot['side_cycles']:,}, {tot['side_uj']:.3f} | "
                f"{tot['digital_cycles']:,}, {tot['digital_uj']:.4f} |")
    return f"**{title}**\n\n" + head + "\n" + "\n".join(body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mlperf-kws,mlperf-vww")
    ap.add_argument("--act-bits", type=int, default=8)
    a = ap.parse_args(argv)
    for name in a.models.split(","):
        print(table(measure(name, a.act_bits), f"{name}, {a.act_bits}-bit activations"))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
