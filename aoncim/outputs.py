"""Where commands write: checked before any long work starts, and never into the package.

Every command that writes a file or a directory names it up front, so a typo in `-o` costs a
second, not the minutes of a compile, an evaluation or a co-simulation. Shipped files (the
checkpoints, the offline data sets, the RTL sources) are read-only to every command: an output
path inside the installed package is refused, whatever the file system's permissions say.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the option and the fix."""


def package_root() -> Path:
    """The installed aoncim tree (the `aoncim` package and its mapped sub-packages)."""
    return Path(__file__).resolve().parent.parent


def _shipped_dirs() -> list[Path]:
    import aoncim

    here = Path(aoncim.__file__).resolve().parent
    # The sub-packages live in sibling folders (pyproject's package-dir); each is shipped.
    roots = [here] + [here.parent / d for d in ("hw", "model", "sim", "firmware", "perf")]
    return [r for r in roots if r.is_dir()]


def is_shipped(path: str | Path) -> bool:
    """True for a path inside a folder the package ships (writing there would change the package)."""
    p = Path(path).resolve()
    return any(p == r or r in p.parents for r in _shipped_dirs())


def _writable_dir(d: Path) -> Path | None:
    """The nearest existing ancestor of `d` (itself included) if a file can be created in it.

    The probe creates and removes a file: permission bits say nothing to root (CI runs as root),
    nor about read-only mounts or pseudo file systems such as /proc."""
    for q in (d, *d.parents):
        if q.exists():
            if not q.is_dir():
                return None
            try:
                fd, probe = tempfile.mkstemp(prefix=".aoncim-probe-", dir=q)
            except OSError:
                return None
            os.close(fd)
            os.unlink(probe)
            return q
    return None


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write `data` to `path` all at once: into a private file beside it, then renamed into place,
    so an interrupted or concurrent command never leaves a half-written file where a good one was.
    Missing parent folders are made."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def check_output_file(path: str | Path, option: str = "-o") -> Path:
    """`path` can be written as a file: its folder exists or can be made, it is not a directory,
    not read-only, not shipped. Nothing is created."""
    p = Path(path)
    if is_shipped(p):
        raise OutputPathError(f"{option} {p}: inside the installed aoncim package, whose files are read-only to "
                              "every command; write under out/ or another folder of yours")
    if p.is_dir():
        raise OutputPathError(f"{option} {p}: is a directory; name a file")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{option} {p}: exists and is read-only; choose another path or make it writable")
    if p.exists() and not p.is_file():
        raise OutputPathError(f"{option} {p}: exists and is not a regular file; name a file")
    parent = p.parent if str(p.parent) else Path(".")
    anc = _writable_dir(parent)
    if anc is None:
        raise OutputPathError(f"{option} {p}: cannot create it in {parent} (not a writable directory); "
                              "choose a folder you can write")
    return p


def check_output_dir(path: str | Path, option: str = "-o") -> Path:
    """`path` can be used as an output directory: it is one, or can be made; writable; not shipped.
    Nothing is created."""
    p = Path(path)
    if is_shipped(p):
        raise OutputPathError(f"{option} {p}: inside the installed aoncim package, whose files are read-only to "
                              "every command; write under out/ or another folder of yours")
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{option} {p}: exists and is not a directory; name a directory")
    if _writable_dir(p) is None:
        raise OutputPathError(f"{option} {p}: not writable (or a parent is a file); choose a folder you can write")
    return p
