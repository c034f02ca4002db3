"""Depthwise convolutions on an analog array: the three ways to run them, measured on the MLPerf Tiny
models that have them (DS-CNN for KWS, MobileNetV1-0.25 for VWW).

- **block-diagonal** (what the compiler does): one MVM layer per depthwise layer, its k^2*C x C
  rectangle holding each channel's k^2 weights on that channel's im2col rows. Cells, cycles and
  energy are measured on the compiled program with the cycle model (equal to the RTL's CYCLES) and
  the energy model.
- **side by side**: each channel its own k^2 x 1 rectangle (no wasted cells), one MVM per channel
  and position (C times the MVMs: every one a full PWM window). Cycles from the same schedule model
  (one ADC slot per MVM, loads hidden); energy from the same per-MVM terms: the rows driven, the
  columns converted and the conducting devices are the same as block-diagonal's, so the analog
  energy is the same; only the control and leakage over the longer run grow.
- **digital**: a multiply-accumulate per pooling lane in the periphery (load_lanes channels a
  cycle, k^2 cycles per position and group, like average pooling) with 8-bit weights in SRAM: no
  array cells, the energy of k^2 8x8-bit multiplies and adds and the weight and activation reads.

`python benchmarks/depthwise.py` prints the table of docs/performance.md ("Depthwise
convolutions") and, for scale, the same for a standard conv of the same shape.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def measure(name: str, act_bits: int = 8) -> list[dict]:
    from aoncim.firmware.compiler import compile_network, lower_graph
    from aoncim.firmware.torch_import import graph_from_module
    from aoncim.model import mlperf
    from aoncim.perf.cycles import layer_cycles
    from aoncim.perf.energy import energy_report
    from aoncim.perf.tech import DEFAULT_TECH as tech

    m = mlperf.get(name)
    cfg = m.config()
    net = m.build(0)
    prog = compile_network(net, cfg, m.inputs(64, 1), act_bits)
    rep = energy_report(cfg, prog)
    labels = [L.label for L in lower_graph(graph_from_module(net, m.inputs(1, 0)))[0]]
    rows = []
    for i, d in enumerate(prog.layers):
        if labels[i] != "depthwise":
            continue
        kk, C, P = d.k_h * d.k_w, d.out_c, d.positions
        e_layer = rep.layers[i]
        per_cycle = e_layer.energy_j["control"] + e_layer.energy_j["static"]
        # side by side: C MVMs of k^2 rows and 1 column per position
        pwm = 2**d.in_bits
        side_cycles = P * C * (pwm + 1) + 6
        # digital: k^2 cycles per position and group of load_lanes channels, plus the issue beat
        groups = -(-C // cfg.load_lanes)
        dig_cycles = P * groups * max(kk, 1 + -(-min(C, cfg.load_lanes) // cfg.pp_lanes)) + 6
        mac_j = tech.mult_j_per_bit2 * 8 * 8 + tech.add_j_per_bit * 20
        dig_j = P * C * kk * (mac_j + 2 * 8 * tech.sram_read_j_per_bit) + P * C * 8 * tech.sram_write_j_per_bit
        rows.append(dict(layer=prog.names[i], C=C, k=f"{d.k_h}x{d.k_w}", positions=P,
                         rect=d.tiles(cfg.rows) * min(d.k_rows, cfg.rows) * C, used=kk * C,
                         block_cycles=layer_cycles(cfg, d), block_uj=e_layer.total_j * 1e6,
                         side_cycles=side_cycles,
                         side_uj=(e_layer.total_j + per_cycle * (side_cycles / layer_cycles(cfg, d) - 1)) * 1e6,
                         digital_cycles=dig_cycles, digital_uj=dig_j * 1e6,
                         conv_cycles=layer_cycles(cfg, d), conv_macs=P * kk * C * C, dw_macs=P * kk * C))
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
