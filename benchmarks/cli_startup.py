"""Start-up time of the commands that need no ML stack, against the target "well under a second".

Each command runs as a user runs it (`.venv/bin/aoncim ...` in a fresh process), `--repeat` times;
the table gives the median wall time, the target, their ratio and whether torch was imported (it
must not be: torch alone costs ~2 s to import). The image commands use a small image compiled
here, and a corrupt copy of it (the error path must be as quick as the good one).

    python benchmarks/cli_startup.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0
# Runs the CLI in this process and reports on stderr whether torch got imported.
PROBE = ("import sys\nfrom aoncim.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
         "print('torch-imported' if 'torch' in sys.modules else 'torch-free', file=sys.stderr)\n")


def _small_image(d: Path) -> Path:
    import torch
    from torch import nn

    from aoncim.config import AonCimConfig
    from aoncim.firmware.compiler import compile_network
    from aoncim.firmware.image import write_image

    cfg = AonCimConfig(rows=64, cols=32, n_adcs=8, act_depth=1024, out_depth=64, param_depth=128, max_layers=8)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
    img = d / "small.img"
    img.write_bytes(write_image(compile_network(net, cfg, torch.rand(8, 2, 4, 4), act_bits=8), cfg))
    (d / "corrupt.img").write_bytes(img.read_bytes()[:-9])
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("aoncim")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _small_image(d)
        commands = [["--help"], ["config"], ["config", "--dump"], ["verilog", "--help"],
                    ["inspect", str(d / "small.img")], ["inspect", str(d / "corrupt.img")],
                    ["export-c", str(d / "small.img"), "-o", str(d / "small.h")]]
        rows = []
        for cmd in commands:
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                subprocess.run([str(exe), *cmd], capture_output=True, cwd=d)
                times.append(time.perf_counter() - t0)
            probe = subprocess.run([sys.executable, "-c", PROBE, *cmd], capture_output=True, text=True, cwd=d)
            torch_free = probe.stderr.strip().splitlines()[-1] == "torch-free"
            med = statistics.median(times)
            rows.append((" ".join(["aoncim", *[Path(c).name if os.sep in c else c for c in cmd]]), med,
                         med / TARGET_S, torch_free))
    print(f"load average {os.getloadavg()[0]:.2f}, median of {args.repeat} runs each\n")
    print(f"| command | wall s | target s | ratio | torch imported | verdict |\n|---|---|---|---|---|---|")
    for name, med, ratio, free in rows:
        ok = ratio < 1 and free
        print(f"| `{name}` | {med:.2f} | < {TARGET_S:.1f} | {ratio:.2f} | {'no' if free else 'YES'} | "
              f"{'pass' if ok else 'FAIL'} |")
    sys.exit(0 if all(r[2] < 1 and r[3] for r in rows) else 1)


if __name__ == "__main__":
    main()
