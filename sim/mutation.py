"""Single-point source mutants of aoncim modules, to prove that a check can fail.

`mutant_module` loads a private copy of a module with one textual edit, without touching the file
or the module already imported: a test builds the mutated component from the copy and expects its
check (a contract spec, a co-simulation) to catch the change.
"""
from __future__ import annotations

import importlib.util
import sys
import types


class MutantError(ValueError):
    """The edit does not apply: its text is not in the module exactly once."""


def mutant_module(name: str, old: str, new: str) -> types.ModuleType:
    """A fresh copy of module `name` (e.g. "aoncim.hw.axil") whose source has `old` replaced by
    `new`; `old` must occur exactly once so that a mutant can never drift onto other code."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise MutantError(f"no module {name}")
    src = open(spec.origin).read()
    count = src.count(old)
    if count != 1:
        raise MutantError(f"{name}: {old!r} occurs {count} times (must be exactly once)")
    mod = types.ModuleType(name)
    mod.__file__ = spec.origin
    mod.__package__ = name.rpartition(".")[0]
    # Relative imports resolve against the package already loaded; the copy is not registered in
    # sys.modules, so nothing else sees it.
    sys.modules.setdefault(mod.__package__, importlib.import_module(mod.__package__))
    exec(compile(src.replace(old, new), f"{spec.origin} (mutant)", "exec"), mod.__dict__)
    return mod
