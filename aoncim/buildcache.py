"""Entries of the build cache (generated Verilog, simulator builds, synthesis reports) that
concurrent runs share and interrupted runs cannot corrupt.

Two `aoncim cosim` started together on a fresh build root used to run `make` in one directory
(the precompiled header got corrupted, cc1plus grew until killed, and later runs reused the broken
build). Now an entry `<dir>/<key>` is

- built by one process at a time: a lock per key (`filelock`, an OS lock on `<dir>/<key>.lock`
  that the kernel releases when its holder dies, so a killed build never blocks the next);
  a process that finds the lock taken waits, then reuses what the holder published;
- built in a private directory `<dir>/.<key>.<random>.part` (same file system as the entry),
  with the stamp `built.ok` written last, and published by one rename: a reader sees a complete
  entry or none;
- trusted only with its stamp: under the lock, an entry without one (from an older aoncim, or
  a hand edit) and the private directories of killed builds are deleted before building.

A failed or interrupted build removes its private directory; nothing of it is ever reused.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from filelock import FileLock, Timeout

STAMP = "built.ok"
_PART = ".part"


@contextlib.contextmanager
def key_lock(lock_path: Path, what: str, status: Callable[[str], None] = lambda msg: None) -> Iterator[None]:
    """Hold the lock of one cache key; say so through `status` when another process has it."""
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        status(f"waiting for another aoncim process building {what} (lock {lock_path})")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _umask() -> int:
    """The process umask, without setting it (os.umask can only be read by changing it, which
    races with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _shared_mode(p: Path, mode: int) -> None:
    # mkdtemp and mkstemp create private (0700/0600) entries; a published entry gets the
    # permissions a plain mkdir or open would have given it, so a shared build root stays usable.
    os.chmod(p, mode & ~_umask())


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _clear_leftovers(parent: Path, name: str) -> None:
    """Private directories or files of earlier builds of `name` that were killed (only called
    with the key's lock held, so none of them belongs to a running build)."""
    for p in parent.glob(f".{name}.*{_PART}"):
        _remove(p)


def stamped(entry: Path) -> bool:
    return (entry / STAMP).is_file()


def cached_dir(parent: Path, key: str, build: Callable[[Path], None], *, what: str,
               status: Callable[[str], None] = lambda msg: None,
               valid: Callable[[Path], bool] = stamped) -> tuple[Path, bool]:
    """The entry `parent/key`, built by `build(private_dir)` if there is no valid one.
    Returns (entry, was_cached). `valid(entry)` decides reuse (default: the stamp exists).
    `build` must leave nothing running and write only inside the directory it is given."""
    entry = Path(parent) / key
    if valid(entry):
        return entry, True
    entry.parent.mkdir(parents=True, exist_ok=True)
    with key_lock(entry.parent / f"{key}.lock", what, status):
        if valid(entry):  # another process built it while this one waited
            return entry, True
        _clear_leftovers(entry.parent, key)
        _remove(entry)  # present but not valid: half-built or foreign
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=_PART, dir=entry.parent))
        try:
            _shared_mode(tmp, 0o777)
            build(tmp)
            (tmp / STAMP).write_text(key + "\n")
            os.rename(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return entry, False


def cached_file(path: Path, write: Callable[[Path], None], *, what: str,
                status: Callable[[str], None] = lambda msg: None) -> bool:
    """The file `path`, written by `write(private_path)` if it has no stamp `<path>.ok`.
    Returns was_cached. Same guarantees as `cached_dir`: one writer per key, a private file
    renamed into place, the stamp written after the rename and required for reuse."""
    path = Path(path)
    stamp = path.with_name(path.name + ".ok")
    if stamp.is_file() and path.is_file():
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    with key_lock(path.with_name(path.name + ".lock"), what, status):
        if stamp.is_file() and path.is_file():
            return True
        _clear_leftovers(path.parent, path.name)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_PART, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            _shared_mode(tmp, 0o666)
            write(tmp)
            os.replace(tmp, path)
            stamp.write_text(path.name + "\n")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
    return False


def private_dir(parent: Path, name: str) -> Path:
    """A fresh directory `parent/name.<random>` no other process uses (per-run outputs such as
    waveforms, which must not go into a shared cache entry)."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=parent))
    _shared_mode(d, 0o777)
    return d
