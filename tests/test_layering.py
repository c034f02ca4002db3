"""The package's layering, by a static scan of every `import` (module level and inside functions)
of the package's own files with `ast`; nothing is imported.

    ground    aoncim.config, .program, .regmap, .schedule, .outputs, ... (aoncim/*.py but cli.py)
    hw        ground only                          (the RTL: Amaranth)
    model     ground, firmware                     (networks, PCM, bit-true model, flows.py)
    firmware  ground, model                        (compiler, image, host driver)
    perf      ground, model, firmware              (analytical models; hw only where listed below)
    sim       everything but the CLI               (co-simulation: RTL against the golden model)
    cli       everything                           (aoncim/cli.py: the thin shell)

model and firmware are one layer in two folders (the compiler's network front end and the host
driver's calibration maths); the analytical models (perf) never need the RTL (hw), so the cycle
model reads the schedule constants from aoncim/schedule.py, not hw/sequencer.py.
"""
from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("hw", "model", "firmware", "perf", "sim")
MAY_IMPORT = {
    "ground": set(),
    "hw": set(),
    "model": {"firmware"},
    "firmware": {"model"},
    "perf": {"model", "firmware"},
    "sim": {"hw", "model", "firmware", "perf"},
    "cli": {"hw", "model", "firmware", "perf", "sim"},
}
# (importing module, imported module): why the rule does not apply.
EXCEPTIONS = {
    ("aoncim.perf.area", "aoncim.hw.verilog"): "area 'synth' mode: the design key of the synthesised RTL",
    ("aoncim.perf.area", "aoncim.hw.synth"): "area 'synth' mode: Yosys synthesis of the RTL for cell counts",
}

# Module pairs that import each other, left as they are, with the reason.
KNOWN_CYCLES = {
    frozenset({"aoncim.model.tasks", "aoncim.model.checkpoint"}):
        "checkpoint validates against the Task table; tasks' save/load call that validation lazily",
}


def _modules() -> dict[str, Path]:
    dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    mods = {}
    for pkg, d in dirs.items():
        for f in sorted((ROOT / d).glob("*.py")):
            mods[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every aoncim module or package `name` imports, wherever in the file."""
    pkg = name if path.stem == "__init__" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from aoncim.model import snapshot` imports the module aoncim.model.snapshot
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES]
        else:
            continue
        out |= {t for t in targets if t == "aoncim" or t.startswith("aoncim.")}
    return out


def _layer(mod: str) -> str:
    part = mod.split(".")[1] if "." in mod else ""
    return part if part in LAYERS else "cli" if part == "cli" else "ground"


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_scan_sees_the_package():
    assert {_layer(m) for m in MODULES} == set(MAY_IMPORT)
    assert "aoncim.schedule" in GRAPH["aoncim.perf.cycles"] and "aoncim.schedule" in GRAPH["aoncim.hw.sequencer"]
    assert "aoncim.hw.synth" in GRAPH["aoncim.perf.area"]  # a lazy import inside a function is seen


def test_every_import_respects_the_layers():
    bad = []
    for src, targets in sorted(GRAPH.items()):
        for dst in sorted(targets):
            a, b = _layer(src), _layer(dst)
            if a != b and b != "ground" and b not in MAY_IMPORT[a] and (src, dst) not in EXCEPTIONS:
                bad.append(f"{src} ({a}) imports {dst} ({b})")
    assert not bad, "layering violated:\n" + "\n".join(bad)


def test_ground_imports_only_ground():
    bad = [f"{s} imports {d}" for s, ts in GRAPH.items() if _layer(s) == "ground" for d in ts if _layer(d) != "ground"]
    assert not bad


def test_model_firmware_perf_never_import_the_rtl():
    bad = [f"{s} imports {d}" for s, ts in GRAPH.items() if _layer(s) in ("model", "firmware", "perf")
           for d in ts if _layer(d) == "hw" and (s, d) not in EXCEPTIONS]
    assert not bad


def test_hw_imports_neither_sim_nor_cli():
    bad = [f"{s} imports {d}" for s, ts in GRAPH.items() if _layer(s) == "hw" for d in ts if _layer(d) in ("sim", "cli")]
    assert not bad


def test_exceptions_are_still_needed():
    stale = [pair for pair in EXCEPTIONS if pair[1] not in GRAPH.get(pair[0], set())]
    assert not stale, f"remove these exceptions, the import is gone: {stale}"


def test_no_module_import_cycles_within_a_layer():
    """kws_data <-> kws_synth was one; a cycle inside a folder means one of the two modules should
    be split (the shared part in its own module, as model/kws_classes.py)."""
    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in GRAPH.get(node, ()):
                if _layer(nxt) != _layer(start) or nxt not in GRAPH or frozenset({node, nxt}) in KNOWN_CYCLES:
                    continue
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for m in sorted(GRAPH) if (c := cycle_from(m))]
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
    assert "aoncim.model.kws_data" not in GRAPH["aoncim.model.kws_synth"]
    for a, b in map(tuple, KNOWN_CYCLES):
        assert b in GRAPH[a] and a in GRAPH[b], f"{a} and {b} no longer import each other: drop KNOWN_CYCLES entry"
