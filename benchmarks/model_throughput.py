"""Training and bit-true inference throughput of the AnalogNets on this CPU.

    .venv/bin/python benchmarks/model_throughput.py [--threads N]

Prints a table: float (FP) and hardware-aware (HWA, analog forward with noise) training samples/s,
statistical analog inference samples/s, and bit-true (integer chip arithmetic, batched) inference
samples/s. Random weights are enough: throughput does not depend on the values.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from aoncim.config import DEFAULT_CONFIG
from aoncim.firmware.compiler import compile_network, quantise_input
from aoncim.model.analog import convert_to_analog, set_analog_mode
from aoncim.model.analognets import analognet_kws, analognet_vww
from aoncim.model.bittrue import BitTrueExecutor
from aoncim.model.hwa import HwaRecipe, analog_kwargs


def rate(fn, n_samples: int, min_seconds: float = 3.0) -> float:
    fn()  # warm-up
    t0, runs = time.perf_counter(), 0
    while time.perf_counter() - t0 < min_seconds:
        fn()
        runs += 1
    return runs * n_samples / (time.perf_counter() - t0)


def train_step(net, x, y):
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def step():
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = DEFAULT_CONFIG
    t = Table(title=f"AnalogNets throughput, samples/s ({a.threads} threads, batch {a.batch})")
    for c in ("network", "params", "MVMs", "FP train", "HWA train", "analog inference", "bit-true inference"):
        t.add_column(c, justify="right")
    for name, make in (("AnalogNet-KWS", analognet_kws), ("AnalogNet-VWW", analognet_vww)):
        torch.manual_seed(0)
        net = make()
        x = torch.rand(a.batch, *net.input_shape)
        y = torch.randint(0, len(net.class_names), (a.batch,))
        fp = rate(train_step(net.train(), x, y), a.batch)
        net.eval()
        prog = compile_network(net, cfg, x, act_bits=8)
        ex = BitTrueExecutor(cfg, prog)
        q = quantise_input(x, 8)
        bt = rate(lambda: ex.run_batch(q, np.arange(a.batch)), a.batch)
        convert_to_analog(net, cfg, **analog_kwargs(HwaRecipe()))  # the shipped recipe: PCM-sampled noise
        set_analog_mode(net, "hwa")
        with torch.no_grad():
            net(x)  # calibrates the input ranges
        hwa = rate(train_step(net.train(), x, y), a.batch)
        set_analog_mode(net, "inference", t_inf=86400.0, seed=0)
        net.eval()
        with torch.no_grad():
            inf = rate(lambda: net(x), a.batch)
        params = sum(p.numel() for n, p in net.named_parameters() if not n.endswith("input_range"))
        t.add_row(name, f"{params:,}", str(prog.mvms), f"{fp:,.0f}", f"{hwa:,.0f}",
                  f"{inf:,.0f}", f"{bt:,.0f}")
    Console().print(t)


if __name__ == "__main__":
    main()
