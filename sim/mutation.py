"""Single-point source mutants of aoncim, to prove that the tests can fail.

Two uses:
  - `mutant_module` loads a private copy of one module with one textual edit, in this process,
    without touching the file or the module already imported: a test builds the mutated component
    from the copy and expects its check (a contract spec) to catch it.
  - `run_mutant` runs a list of tests against a whole package with one edit, in a child process:
    the package is a private tree of symlinks to this checkout (`mutant_tree`) in which only the
    mutated file is a real, edited copy, put first on PYTHONPATH. The RTL's build cache is keyed
    by the generated Verilog, so a mutant of the RTL builds its own simulator and a mutant of the
    golden model reuses the unmutated one. benchmarks/mutation.py runs the catalogue
    (`sim/mutants.py`) in parallel and prints the kill table.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import tomllib
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class MutantError(ValueError):
    """The edit does not apply: its text is not in the file exactly once."""


@dataclass(frozen=True)
class Mutant:
    """One edit: in `path` (relative to the checkout), `old` (exactly once) becomes `new`."""
    name: str
    block: str   # the part of the chip or model it breaks, for the table
    path: str
    old: str
    new: str
    # Why a mutant that no test kills is equivalent (changes no behaviour); None: it must be killed.
    equivalent: str | None = None

    def apply(self, src: str) -> str:
        count = src.count(self.old)
        if count != 1:
            raise MutantError(f"mutant {self.name}: {self.old!r} occurs {count} times in {self.path} (must be once)")
        return src.replace(self.old, self.new)


def mutant_module(name: str, old: str, new: str) -> types.ModuleType:
    """A fresh copy of module `name` (e.g. "aoncim.hw.axil") whose source has `old` replaced by
    `new`; `old` must occur exactly once so that a mutant can never drift onto other code."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise MutantError(f"no module {name}")
    src = Mutant(name, "", spec.origin, old, new).apply(open(spec.origin).read())
    mod = types.ModuleType(name)
    mod.__file__ = spec.origin
    mod.__package__ = name.rpartition(".")[0]
    # Relative imports resolve against the package already loaded; the copy is not registered in
    # sys.modules, so nothing else sees it.
    importlib.import_module(mod.__package__)
    exec(compile(src, f"{spec.origin} (mutant)", "exec"), mod.__dict__)
    return mod


def _package_dirs() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def mutant_tree(m: Mutant, dest: Path) -> Path:
    """Build `dest/aoncim/...`, the installed package layout, as symlinks into this checkout with
    `m.path` replaced by its edited copy; returns the folder to put on PYTHONPATH."""
    src_file = ROOT / m.path
    edited = m.apply(src_file.read_text())
    site = dest / "site"
    for pkg, folder in sorted(_package_dirs().items(), key=lambda kv: kv[0].count(".")):
        target = site.joinpath(*pkg.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in (ROOT / folder).iterdir():
            if entry.name == "__pycache__" or (pkg == "aoncim" and entry.is_dir()):
                continue  # the ground package's folder holds no subpackage of its own
            link = target / entry.name
            if entry.resolve() == src_file.resolve():
                link.write_text(edited)
            elif not link.exists():
                link.symlink_to(entry.resolve())
    return site


@dataclass(frozen=True)
class MutantResult:
    mutant: Mutant
    killed: bool
    killer: str | None   # the first failing test (its node id), None if every test passed
    seconds: float
    log: str             # the tail of the test run's output


def _first_failure(out: str) -> str | None:
    for line in out.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            node = line.split()[1]
            return node[node.find("tests/"):] if "tests/" in node else node
    return None


def run_mutant(m: Mutant, tests: list[str], workdir: Path, timeout_s: float = 1800.0,
               build_root: Path | None = None) -> MutantResult:
    """Run `tests` (pytest node ids relative to the checkout) against the package with `m`
    applied; stop at the first failure. A mutant is killed when a test fails (or the run times
    out: a hang is a kill too, the co-simulation has timeouts of its own)."""
    run = Path(workdir) / m.name
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    site = mutant_tree(m, run)
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    if build_root is not None:
        env["AONCIM_BUILD_ROOT"] = str(build_root)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           f"--rootdir={ROOT}", "-c", str(ROOT / "pyproject.toml"), "-o", "addopts=",
           *(str(ROOT / t) for t in tests)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=run, env=env, text=True, capture_output=True, timeout=timeout_s)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = f"timed out after {timeout_s:.0f} s\n{e.stdout or ''}", -1
    seconds = time.monotonic() - t0
    (run / "pytest.log").write_text(out)
    killer = _first_failure(out) if rc not in (0, 5) else None
    if rc == -1:
        killer = "timeout"
    elif rc not in (0, 1):
        # 2-4: interrupted, internal or usage error. The mutant broke the test run itself (an
        # import error, say): that is a kill only if the unmutated package runs these tests.
        killer = killer or f"pytest exit {rc}"
    return MutantResult(m, rc != 0, killer, seconds, "\n".join(out.splitlines()[-30:]))
