"""Independent units of work run in order: in this process, in N local worker processes, or on a
Dask cluster. `aoncim sweep`, `aoncim eval` and `aoncim cosim --model random` share it.

    with Workers(workers=2) as w:              # or Workers(dask="tcp://host:8786")
        results = w.map(fn, units, shared=data, progress=True, desc="sweep")

    results = run_units(fn, units, workers=2)  # the same, in one call

`fn(unit)` (or `fn(shared, unit)` with `shared`) must be a module-level function and the units
and results picklable; results come back in the order of `units`, whatever order they finished
in. `shared` (a model, a test set) crosses to each worker once per `map`, not once per unit:
pickled to a temporary file the local workers read once, scattered to every Dask worker. Units
must not depend on each other, on what an earlier unit left in `shared`, or on global random
state: the callers seed every unit from its own parameters, so the three ways of running give the
same results, bit for bit.

- One worker (`workers=1`, no `dask`): a plain loop in this process, no pickling.
- Local workers: a `spawn` process pool (torch and its thread pools do not survive `fork`), kept
  for the `with` block, so successive `map`s reuse the started workers. The workers die with this
  process: each asks the kernel for SIGTERM when its parent dies (Linux `PR_SET_PDEATHSIG`; a
  worker's simulator groups follow it, `aoncim.procgroup`), and an error or Ctrl-C in this process
  cancels what has not started and terminates the workers.
- Dask (`dask=` a scheduler address "tcp://host:8786", a `distributed.Client` or a
  `LocalCluster`): the workers need aoncim installed, the same version, and whatever the units
  read (for co-simulation, the simulator; each worker builds into its own build cache, or shares
  one on a shared file system: `aoncim.buildcache` locks it).

Errors a user can make (no worker, a scheduler that cannot be reached or a malformed address,
`distributed` not installed) raise `WorkersError`: one line, for the command line.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable, Sequence

_NOTHING = object()  # `shared` not given: fn(unit)
# In a local worker: (file, object) of the last `map`'s shared object (`_load_shared`).
_shared: Any = _NOTHING
CONNECT_TIMEOUT = "15s"  # reaching a Dask scheduler
INSTALL_HINT = "pip install 'aoncim[cluster]'"


class WorkersError(ValueError):
    """Workers that cannot be had: one line."""


def check_workers(workers: int | None, dask=None) -> None:
    """Refuse what cannot run: fewer than one worker, or local workers and a Dask cluster at once."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise WorkersError(f"--workers {workers}: need at least one")
    if dask is not None and workers is not None and workers > 1:
        raise WorkersError(f"give --workers {workers} or --dask, not both")
    if isinstance(dask, str) and not dask.strip():
        raise WorkersError("--dask: give the scheduler's address, such as tcp://host:8786")


def describe(workers: int | None, dask=None) -> str:
    """Where the units run, for a status line: 'this process', '2 local workers', 'Dask tcp://...'."""
    if dask is not None:
        addr = dask if isinstance(dask, str) else getattr(dask, "scheduler_address", None) or \
            getattr(getattr(dask, "scheduler", None), "address", None) or "client"
        return f"Dask {addr}"
    n = workers or 1
    return "this process" if n == 1 else f"{n} local workers"


# ------------------------------------------------------------------------------ local workers
def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the parent process dies (Linux); exit at once if it is
    already gone. SIGTERM rather than SIGKILL: the co-simulation's `procgroup.sigterm_raises`
    turns it into SystemExit, so a worker's simulator groups and private build directories go too."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def _init_local(parent: int, initializer: Callable[[], None] | None) -> None:
    _die_with_parent(parent)
    if initializer is not None:
        initializer()


def _load_shared(path: str):
    """The shared object of one `map`, read from its file once per worker."""
    global _shared
    if _shared is _NOTHING or _shared[0] != path:
        import pickle

        _shared = _NOTHING  # the previous map's, freed before the next is read
        with open(path, "rb") as f:
            _shared = (path, pickle.load(f))
    return _shared[1]


def _call_local(fn: Callable, unit, shared_path: str | None):
    return fn(unit) if shared_path is None else fn(_load_shared(shared_path), unit)


def _call_shared(unit, fn: Callable, shared):
    return fn(shared, unit)


def _stop(ex) -> None:
    """Cancel the units not started and end the workers now (an error or Ctrl-C in this process)."""
    ex.shutdown(wait=False, cancel_futures=True)
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()


# ------------------------------------------------------------------------------ progress
class _Progress:
    """A tqdm bar (progress=True), a caller's `progress(done, total)`, or nothing; `weights`
    count a unit as that many steps (inferences of a chunk of cases)."""

    def __init__(self, progress, n: int, desc: str, weights: Sequence[int] | None):
        self.weights = list(weights) if weights is not None else [1] * n
        self.total, self.done = sum(self.weights), 0
        self.call = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit="unit" if weights is None else "step", leave=False)
        if self.call:
            self.call(0, self.total)

    def step(self, k: int) -> None:
        self.done += self.weights[k]
        if self.bar is not None:
            self.bar.update(self.weights[k])
        if self.call:
            self.call(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------ the pool
class Workers:
    """Where units run (see the module docstring); a context manager: a Dask client is connected
    on entry (a bad address fails there, before any work) and closed on exit if it was opened here.

    `initializer`: a module-level function each local worker runs once when it starts (not run
    in this process, nor on Dask workers: units that need a setting make it themselves)."""

    def __init__(self, workers: int | None = 1, dask=None, *, initializer: Callable[[], None] | None = None,
                 connect_timeout: str = CONNECT_TIMEOUT):
        check_workers(workers, dask)
        self.workers = 1 if workers is None else workers
        self.dask = dask
        self.initializer = initializer
        self.connect_timeout = connect_timeout
        self.client = None
        self._own = False
        self._pool = None  # the local process pool, started by the first map that needs it

    def __enter__(self) -> "Workers":
        if self.dask is not None:
            self.client, self._own = connect(self.dask, self.connect_timeout)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self._pool is not None:
            if exc_type is None:
                self._pool.shutdown(wait=True)
            else:
                _stop(self._pool)
            self._pool = None
        if self._own and self.client is not None:
            self.client.close()
        self.client, self._own = None, False

    @property
    def size(self) -> int:
        """How many units can run at once: local workers, or the Dask workers' threads."""
        if self.client is not None:
            return max(1, sum(self.client.nthreads().values()))
        return self.workers

    @property
    def where(self) -> str:
        return describe(self.workers, self.dask)

    def map(self, fn: Callable, units: Sequence, *, shared: Any = _NOTHING, progress=False, desc: str = "work",
            weights: Sequence[int] | None = None) -> list:
        """[fn(u) for u in units] (fn(shared, u) with `shared`), run where this pool says, in the
        order of `units`. `progress`: True for a tqdm bar named `desc`, or a callable
        progress(done, total) called as units finish (`weights`: steps per unit, default 1)."""
        units = list(units)
        if weights is not None and len(weights) != len(units):
            raise ValueError(f"{len(weights)} weights for {len(units)} units")
        bar = _Progress(progress, len(units), desc, weights)
        try:
            if self.dask is not None:
                if self.client is None:
                    raise RuntimeError("Workers.map with dask: use the pool as a context manager")
                return self._map_dask(fn, units, shared, bar)
            if self.workers <= 1 or len(units) <= 1:
                out = []
                for k, u in enumerate(units):
                    out.append(fn(u) if shared is _NOTHING else fn(shared, u))
                    bar.step(k)
                return out
            return self._map_local(fn, units, shared, bar)
        finally:
            bar.close()

    def _map_local(self, fn, units, shared, bar) -> list:
        import multiprocessing as mp
        import pickle
        import tempfile
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init_local, initargs=(os.getpid(), self.initializer))
        out: list = [None] * len(units)
        with tempfile.TemporaryDirectory(prefix="aoncim-shared-") as tmp:
            path = None
            if shared is not _NOTHING:
                import uuid

                path = os.path.join(tmp, f"shared-{uuid.uuid4().hex}.pkl")  # a name no earlier map had
                with open(path, "wb") as f:
                    pickle.dump(shared, f, protocol=pickle.HIGHEST_PROTOCOL)
            try:
                futs = {self._pool.submit(_call_local, fn, u, path): k for k, u in enumerate(units)}
                for f in as_completed(futs):
                    out[futs[f]] = f.result()
                    bar.step(futs[f])
            except BrokenProcessPool:
                pool, self._pool = self._pool, None
                _stop(pool)
                raise WorkersError("a local worker process died (killed, or out of memory?); run with "
                                   "--workers 1 to see the unit's own error") from None
            except BaseException:
                pool, self._pool = self._pool, None
                _stop(pool)
                raise
        return out

    def _map_dask(self, fn, units, shared, bar) -> list:
        from distributed import as_completed

        c = self.client
        if shared is _NOTHING:
            futs = c.map(fn, units, pure=False)
        else:
            # One copy per worker; [shared]: scatter would split a list into its items.
            data = c.scatter([shared], broadcast=True, hash=False)[0]
            futs = c.map(_call_shared, units, fn=fn, shared=data, pure=False)
        index = {f.key: k for k, f in enumerate(futs)}
        out: list = [None] * len(units)
        try:
            for f in as_completed(futs, loop=c.loop):  # not the default client's: there may be none
                out[index[f.key]] = f.result()
                bar.step(index[f.key])
        except BaseException:
            c.cancel(futs)
            raise
        return out


def connect(address, timeout: str = CONNECT_TIMEOUT):
    """(client, opened_here) for `address`: a scheduler address, a `distributed.Client` (used as
    is) or a cluster object with a `scheduler_address` (a `LocalCluster`)."""
    try:
        from distributed import Client
    except ImportError:
        raise WorkersError(f"--dask needs dask.distributed: {INSTALL_HINT}") from None
    if hasattr(address, "submit"):
        return address, False
    address = getattr(address, "scheduler_address", address)
    try:
        return Client(address, timeout=timeout, set_as_default=False), True
    except (OSError, ValueError, TypeError) as e:  # TimeoutError is an OSError
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
    # The half-made Client is in a reference cycle: collected now, while its event loop runs, it
    # closes at once; left to the end of the interpreter, closing it waits 30 s and prints a
    # traceback. Hence also the raise outside the except clause (the first error's traceback
    # holds it).
    import gc

    gc.collect()
    raise WorkersError(f"--dask {address}: cannot reach the scheduler: {why}")


def run_units(fn: Callable, units: Sequence, *, workers: int | None = 1, dask=None, shared: Any = _NOTHING,
              progress=False, desc: str = "work", weights: Sequence[int] | None = None,
              initializer: Callable[[], None] | None = None, connect_timeout: str = CONNECT_TIMEOUT) -> list:
    """`Workers(workers, dask).map(fn, units, ...)` in one call: the results in the order of `units`."""
    with Workers(workers, dask, initializer=initializer, connect_timeout=connect_timeout) as w:
        return w.map(fn, units, shared=shared, progress=progress, desc=desc, weights=weights)
