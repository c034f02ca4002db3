"""The MLPerf Tiny models beside the AnalogNets on the chip: cycles, energy, TOPS/W, array
utilisation and area, each on its own config (the default chip with what the model needs to fit,
model/mlperf.py), at 8/6/4-bit activations. The table of docs/performance.md, "MLPerf Tiny".

    python benchmarks/mlperf.py [--bits 8,6,4] [--models mlperf-kws,...]
"""
from __future__ import annotations

import argparse
import sys

ANALOGNETS = ("kws", "vww")


def rows(models: list[str], bits: list[int]) -> list[dict]:
    from aoncim.config import DEFAULT_CONFIG
    from aoncim.firmware.summary import utilisation
    from aoncim.model import mlperf
    from aoncim.perf.area import area
    from aoncim.perf.cycles import array_bound_cycles, inference_cycles
    from aoncim.perf.energy import energy_report
    from aoncim.perf.workload import compile_task

    out = []
    for name in models:
        cfg = mlperf.get(name).config() if name.startswith("mlperf-") else DEFAULT_CONFIG
        ar = area(cfg)
        changed = {k: getattr(cfg, k) for k in ("rows", "cols", "act_depth", "out_depth", "max_layers", "param_depth",
                                                 "dw_depth")
                   if getattr(cfg, k) != getattr(DEFAULT_CONFIG, k)}
        for b in bits:
            prog = compile_task(name, cfg, b)
            e = energy_report(cfg, prog, area=ar)
            u = utilisation(prog, cfg)
            cyc, bound = inference_cycles(cfg, prog), array_bound_cycles(cfg, prog)
            out.append(dict(model=name, bits=b, config=", ".join(f"{k}={v}" for k, v in changed.items()) or "default",
                            layers=len(prog.layers), mvms=prog.mvms, macs=e.macs, cycles=cyc,
                            over=100 * (cyc / bound - 1), uj=e.energy_j * 1e6, tops_w=e.tops_w,
                            dominant=e.dominant, util=100 * u.fraction, mm2=ar.total_mm2,
                            latency_us=e.latency_s * 1e6))
    return out


def table(rs: list[dict]) -> str:
    head = ("| model | bits | config | layers | MVMs | MACs | cycles | over array bound | µJ | TOPS/W | dominant "
            "| array used | area mm² |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    body = [f"| {r['model']} | {r['bits']} | {r['config']} | {r['layers']} | {r['mvms']:,} | {r['macs']:,} | "
            f"{r['cycles']:,} | {r['over']:.1f} % | {r['uj']:.3f} | {r['tops_w']:.2f} | {r['dominant']} | "
            f"{r['util']:.1f} % | {r['mm2']:.3f} |" for r in rs]
    return "\n".join([head] + body)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="kws,vww,mlperf-kws,mlperf-vww,mlperf-ic,mlperf-ad")
    ap.add_argument("--bits", default="8,6,4")
    a = ap.parse_args(argv)
    print(table(rows(a.models.split(","), [int(b) for b in a.bits.split(",")])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
