"""Mutation analysis: does the default suite's verification catch every single-point bug?

Applies each mutant of the catalogue (`aoncim.sim.mutants.CATALOGUE`: RTL blocks, both crossbar
twins, the host port and the golden model) to a private copy of the package, runs the kill tests
(`KILL_TESTS`, fast ones first) against it until one fails, and prints the kill table: mutant,
block, the killing test and the time it took. The last line is `mutants killed: K/N`; the exit
code is 1 if any mutant survives. The unmutated package runs the same tests first (a mutant only
counts as killed by tests that pass without it). Mutants run in parallel (`--jobs`); a mutant of
the RTL builds its own simulator (about a minute), a mutant of the golden model reuses the build.

    python benchmarks/mutation.py [--jobs 2] [--only NAME,...] [--list] [--out out/benchmarks]

Writes `mutation.json` (every result) and `mutation.png` (time to kill per mutant, by block).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from aoncim.sim.mutants import CATALOGUE, KILL_TESTS
from aoncim.toolchain import build_root
from aoncim.sim.mutation import ROOT, MutantError, run_mutant


def _baseline(tests: list[str]) -> float:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                        *tests], cwd=ROOT, text=True, capture_output=True)
    if p.returncode != 0:
        tail = "\n".join((p.stdout + p.stderr).splitlines()[-15:])
        sys.exit(f"mutation: the kill tests fail without any mutant; fix them first:\n{tail}")
    return time.monotonic() - t0


def _plot(results, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = sorted({r.mutant.block for r in results})
    colours = {b: plt.cm.tab20(i % 20) for i, b in enumerate(blocks)}  # a colour per block
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(results) + 1.2))
    names = [r.mutant.name for r in results]
    ax.barh(names, [r.seconds for r in results], color=[colours[r.mutant.block] for r in results],
            hatch=None)
    for i, r in enumerate(results):
        if not r.killed:
            ax.text(r.seconds, i, "  SURVIVED", va="center", color="red", fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds to the first failing test")
    ax.tick_params(axis="y", labelsize=6)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[b]) for b in blocks]
    ax.legend(handles, blocks, fontsize=6, loc="lower right")
    ax.set_title(f"mutants killed: {sum(r.killed for r in results)}/{len(results)}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=max(1, min(4, (os.cpu_count() or 2))),
                    help="mutants run at once (each a pytest process; an RTL mutant also builds)")
    ap.add_argument("--only", help="comma-separated mutant names")
    ap.add_argument("--list", action="store_true", help="list the catalogue and exit")
    ap.add_argument("--out", default="out/benchmarks", help="folder for mutation.json and mutation.png")
    args = ap.parse_args()
    if args.jobs < 1:
        sys.exit(f"mutation: --jobs {args.jobs}: must be at least 1")
    mutants = CATALOGUE
    if args.only:
        want = args.only.split(",")
        unknown = sorted(set(want) - {m.name for m in CATALOGUE})
        if unknown:
            sys.exit(f"mutation: unknown mutant(s) {', '.join(unknown)}; see --list")
        mutants = [m for m in CATALOGUE if m.name in want]
    if args.list:
        for m in mutants:
            print(f"{m.name:28} {m.block:14} {m.path}: {m.old!r} -> {m.new!r}")
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for m in mutants:  # every edit applies before anything long starts
        try:
            m.apply((ROOT / m.path).read_text())
        except (MutantError, OSError) as e:
            sys.exit(f"mutation: {e}")

    base = _baseline(KILL_TESTS)
    print(f"kill tests pass unmutated in {base:.0f} s; {len(mutants)} mutants, {args.jobs} at a time", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="aoncim-mutants-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        # One shared build cache: it is keyed by the generated Verilog's sources, so an RTL mutant
        # gets builds of its own and every other mutant reuses the unmutated ones.
        futures = {pool.submit(run_mutant, m, KILL_TESTS, Path(tmp), build_root=build_root()): m for m in mutants}
        for i, f in enumerate(as_completed(futures), 1):
            r = f.result()
            results.append(r)
            print(f"[{i}/{len(mutants)}] {r.mutant.name}: {'killed by ' + r.killer if r.killed else 'SURVIVED'} "
                  f"({r.seconds:.0f} s)", flush=True)
    order = {m.name: i for i, m in enumerate(mutants)}
    results.sort(key=lambda r: order[r.mutant.name])

    w = max(len(m.name) for m in mutants)
    print(f"\n{'mutant':{w}}  {'block':14}  {'killed by':60}  {'s':>5}")
    for r in results:
        print(f"{r.mutant.name:{w}}  {r.mutant.block:14}  {(r.killer or 'SURVIVED')[:60]:60}  {r.seconds:5.0f}")
    survivors = [r for r in results if not r.killed]
    for r in survivors:
        print(f"\nsurvivor {r.mutant.name} ({r.mutant.path}: {r.mutant.old!r} -> {r.mutant.new!r}):\n{r.log}")
    (out / "mutation.json").write_text(json.dumps(
        [dict(name=r.mutant.name, block=r.mutant.block, path=r.mutant.path, old=r.mutant.old, new=r.mutant.new,
              killed=r.killed, killer=r.killer, seconds=round(r.seconds, 1)) for r in results], indent=1))
    _plot(results, out / "mutation.png")
    print(f"table: {out / 'mutation.json'}; plot: {out / 'mutation.png'}")
    print(f"mutants killed: {len(results) - len(survivors)}/{len(results)}")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
