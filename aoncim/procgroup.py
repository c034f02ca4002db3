"""Child processes (simulator builds and runs) that die with the Python process that started them.

A Verilator build is `make` running `g++`, which runs `cc1plus`; a co-simulation is the simulator
with an embedded Python. Started with `subprocess.run`, they survive Ctrl-C or a kill of the
Python process and go on writing into the build cache. So every command here runs

- in its own process group (`start_new_session`), which is killed as a whole (SIGTERM, then
  SIGKILL) when the caller leaves by an exception: KeyboardInterrupt, SIGTERM (turned into
  SystemExit by `sigterm_raises`), or any error;
- under a `sh` guard that kills its group (`kill -KILL 0`) on SIGTERM, with the kernel sending
  it that SIGTERM when the Python process dies (Linux `PR_SET_PDEATHSIG`): a SIGKILLed Python
  process, which runs no clean-up, still takes the compiler down with it. The guard is needed
  because the death signal reaches only the direct child: given to make, it would leave the
  compilers below make running.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Iterator, Sequence

# On SIGTERM (from the death signal or from `kill_group`) the guard kills its whole group, itself
# included; otherwise it exits with the command's status. A background job of a non-interactive
# sh ignores SIGINT, which is why the group is stopped with SIGTERM/SIGKILL, never SIGINT.
_GUARD = 'trap "kill -KILL 0" TERM HUP; "$@" & wait $!'
_PR_SET_PDEATHSIG = 1
_GRACE_S = 2.0  # how long a group gets after SIGTERM before SIGKILL

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def _death_signal_setter():
    """A preexec_fn that asks the kernel for SIGTERM when the parent dies (Linux), or None.

    The death signal follows the thread that forked: callers wait for the child in that thread,
    so it fires only when the process goes. libc is resolved here, before the fork, so the child
    makes one foreign call and no import."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nobody would send it
            os.kill(os.getpid(), signal.SIGKILL)

    return set_death_signal


def start(cmd: Sequence[str], **kwargs) -> subprocess.Popen:
    """Popen `cmd` in a new process group under the guard (see the module docstring)."""
    kwargs.pop("start_new_session", None)
    proc = subprocess.Popen(["/bin/sh", "-c", _GUARD, "aoncim-guard", *map(str, cmd)], start_new_session=True,
                            preexec_fn=_death_signal_setter(), **kwargs)
    with _live_lock:
        _live.add(proc)
    return proc


def _wait_unreaped(proc: subprocess.Popen, timeout: float | None) -> None:
    """Block until `proc` has exited without reaping it: until reaped, its pid, which is also the
    group id, cannot be given to another process, so signalling the group stays safe. Raises
    subprocess.TimeoutExpired after `timeout` seconds."""
    flags = os.WEXITED | os.WNOWAIT
    end = None if timeout is None else time.monotonic() + timeout
    try:
        while os.waitid(os.P_PID, proc.pid, flags | (0 if end is None else os.WNOHANG)) is None:
            if time.monotonic() > end:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            time.sleep(0.05)
    except ChildProcessError:
        pass  # already reaped (by `kill_all` from another thread)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.returncode is None:  # not reaped: the group id is still this group's
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def kill_group(proc: subprocess.Popen) -> None:
    """Stop `proc`'s whole group: SIGTERM (the guard turns it into SIGKILL for the group), then
    SIGKILL for whatever is left after a grace period; reap `proc`."""
    _signal_group(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        _wait_unreaped(proc, _GRACE_S)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _forget(proc: subprocess.Popen) -> None:
    with _live_lock:
        _live.discard(proc)


def run(cmd: Sequence[str], *, timeout: float | None = None, **kwargs) -> int:
    """Run `cmd` to completion in its own group; return its exit status. If this thread is left
    by an exception (KeyboardInterrupt, SystemExit from `sigterm_raises`, a timeout), the group
    is killed before the exception goes on. A timeout raises subprocess.TimeoutExpired."""
    proc = start(cmd, **kwargs)
    try:
        _wait_unreaped(proc, timeout)
        _signal_group(proc, signal.SIGKILL)  # anything the command left running in the background
        return proc.wait()
    except BaseException:
        kill_group(proc)
        raise
    finally:
        _forget(proc)


def live() -> frozenset[subprocess.Popen]:
    """The groups this process started and is still waiting on, from any thread."""
    with _live_lock:
        return frozenset(_live)


def kill_all(keep: frozenset[subprocess.Popen] = frozenset()) -> None:
    """Kill every group in `live()` but those in `keep`: for a main thread leaving while a worker
    thread it started waits on a simulator (`keep`: the groups that were running before)."""
    for p in live() - keep:
        kill_group(p)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit(143) in the main thread (as Ctrl-C raises
    KeyboardInterrupt), so the `finally` and `except` clauses that kill child groups and remove
    private build directories run. Python's default for SIGTERM is to die at once, skipping them.
    Left alone when called off the main thread or when the program has its own handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def raise_exit(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, raise_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` is still running (zombies waiting to be reaped by
    their new parent do not count). Linux only: reads /proc."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_group_gone(pgid: int, timeout: float = 5.0) -> bool:
    """Poll `group_alive` until the group is gone or `timeout` passes; True if it is gone."""
    end = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True
