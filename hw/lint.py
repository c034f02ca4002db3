"""`make lint`: Verilator's -Wall lint of the generated top level, with the justified waivers only.

    python -m aoncim.hw.lint [--config CFG.json]

Prints every warning left after `hw/lint_waivers.vlt` and exits 1 if there is any.
"""
from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

from aoncim.config import DEFAULT_CONFIG, AonCimConfig
from aoncim.toolchain import activate_simulator

from .verilog import TOP_NAME, WAIVERS, cached_verilog

_WARNING = re.compile(r"^%(Warning|Error)-?([A-Z_]*): (.*)$")


def lint_verilog(path: Path, top: str = TOP_NAME, waivers: Path | None = WAIVERS) -> list[str]:
    """Run `verilator --lint-only -Wall` on `path`; return one line per warning or error."""
    activate_simulator("verilator")
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", top]
    cmd += [str(waivers)] if waivers else []
    r = subprocess.run(cmd + [str(path)], capture_output=True, text=True)
    found = [f"{m.group(2) or m.group(1)}: {m.group(3)}" for line in r.stderr.splitlines()
             if (m := _WARNING.match(line)) and not m.group(3).startswith("Exiting due to")]
    if r.returncode and not found:
        found = [f"verilator exited {r.returncode}: {r.stderr.strip()[-300:]}"]
    return found


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m aoncim.hw.lint", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="JSON file of AonCimConfig fields")
    ap.add_argument("--cache", default="sim_build/verilog", help="generated-Verilog cache directory")
    a = ap.parse_args(argv)
    cfg = AonCimConfig.load(a.config) if a.config else DEFAULT_CONFIG
    src, _ = cached_verilog(cfg, Path(a.cache))
    issues = lint_verilog(src)
    for line in issues[:50]:
        print(line)
    if len(issues) > 50:
        by_rule = collections.Counter(line.split(":", 1)[0] for line in issues)
        print(f"... {len(issues) - 50} more; by rule: {dict(by_rule)}")
    print(f"verilator -Wall lint of {src}: {len(issues)} warning(s) beyond the waivers in {WAIVERS.name}")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
