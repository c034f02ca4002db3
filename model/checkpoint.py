"""One validation of an AnalogNet checkpoint, run before anything is built from it.

`aoncim train` writes a dict: format, task, fp_state, hwa_state, scaler, recipe, info. Every
command that reads one (compile, eval, the co-simulation jobs, the performance model) goes through
`read_checkpoint`, which loads it with `torch.load(weights_only=True)` and checks it whole before a
model is built: the keys and their types, the task, every tensor of both state dicts present with
the network's shape and no other, every value finite and within what the chip can represent, the
input scaler and the training recipe. Each problem is one `CheckpointError` line naming the entry
(e.g. `hwa_state['12.bias']`) and what to do; a damaged file never reaches `load_state_dict` or the
compiler, where it would surface as a traceback or as an image that computes nothing.
"""
from __future__ import annotations

import math
import pickle
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import torch

from aoncim.firmware.compiler import PARAM_LIMIT

from .hwa import HwaRecipe
from .pcm import MAX_TIME_S
from .tasks import TASK, TASKS, Task, get_task

FORMAT = 1
ENTRIES = {"format": int, "task": str, "fp_state": dict, "hwa_state": dict, "scaler": dict, "recipe": dict,
           "info": dict}
# Recipe fields a checkpoint may lack: those written before the drift-aware recipe, which
# load_checkpoint maps with their own (old) meaning.
LEGACY_RECIPE_FIELDS = ("per_column", "pcm_train_times")

# Largest magnitude of any tensor entry, and smallest of a DAC range: the compiler's own bound
# (firmware/compiler.py PARAM_LIMIT, 2**16, with its reasoning: beyond it a weight or bias
# saturates the chip's per-channel post-processing, a 16-bit scale beside a 32-bit bias). Checked
# here too so that eval, which also runs the float models, refuses what compile would.
VALUE_LIMIT = PARAM_LIMIT
_COUNTERS = ("num_batches_tracked",)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; one line naming the entry and the fix."""


def _fmt_shape(s) -> str:
    return "(" + ", ".join(str(int(d)) for d in s) + (",)" if len(s) == 1 else ")")


@lru_cache(maxsize=None)
def expected_tensors(task_name: str) -> tuple[dict, dict]:
    """{key: (shape, is_counter)} of the float network's and of the analog network's state dict."""
    from aoncim.config import DEFAULT_CONFIG

    from .analog import convert_to_analog

    def spec(net) -> dict:
        return {k: (tuple(v.shape), k.rsplit(".", 1)[-1] in _COUNTERS) for k, v in net.state_dict().items()}

    task = TASK[task_name]
    fp = spec(task.build())
    hwa = spec(convert_to_analog(task.build(), DEFAULT_CONFIG))
    return fp, hwa


@lru_cache(maxsize=None)
def _input_features(task_name: str) -> int:
    return int(TASK[task_name].build().input_shape[-1])


def input_features(task: Task) -> int:
    """Length of the input scaler: the last axis of the network's input (MFCC coefficients, image columns)."""
    return _input_features(task.name)


# --------------------------------------------------------------------------------------- reading
def read_checkpoint(path: str | Path, task: Task | None = None) -> tuple[Task, dict]:
    """(task, checkpoint dict) of a checkpoint file, validated; `task` given: it must be that task's."""
    p = Path(path)
    obj = _load(p, task)
    # The object itself, never as a path: a file holding a string is not a checkpoint.
    return _validate_object(obj, task, f"checkpoint {p}"), obj


def _load(p: Path, task: Task | None) -> object:
    if not p.exists():
        train = f"aoncim train {task.name if task else 'TASK'} -o {p}"
        # A CheckpointError too (not FileNotFoundError, an OSError): callers and fuzzers catch one type.
        raise CheckpointError(f"checkpoint {p} not found: train one with `{train}`")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} is not a file: name the .pt file `aoncim train` wrote")
    try:
        size = p.stat().st_size
        if size == 0:
            raise CheckpointError(f"checkpoint {p} is empty (0 bytes): it was not written completely; "
                                  "train it again or restore it")
        return torch.load(p, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {p}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - torch.load raises unpickling, zip, EOF and runtime errors alike
        raise CheckpointError(f"cannot read checkpoint {p}: {_load_failure(e)}; train it again or restore "
                              "it") from None


def _load_failure(e: Exception) -> str:
    """What torch.load's (long, multi-line, advice-laden) error means for an aoncim checkpoint."""
    text = str(e)
    if "PytorchStreamReader" in text or "zip archive" in text:
        return "not a complete PyTorch archive (truncated or damaged)"
    glob = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if glob:
        # weights_only refused to build an object: a checkpoint of `aoncim train` holds only
        # tensors, numbers, strings, lists and dicts, and nothing in it is ever executed.
        return (f"it holds a {glob.group(1)} object, which no checkpoint of `aoncim train` does (weights-only "
                "loading refused it)")
    if "Weights only load failed" in text or isinstance(e, (KeyError, EOFError, pickle.UnpicklingError)):
        return "not a PyTorch checkpoint (unreadable pickle)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(e).__name__}{': ' + first if first else ''}"


# ------------------------------------------------------------------------------------ validation
def validate_checkpoint(obj_or_path, task: Task | str | None = None) -> Task:
    """The task of a checkpoint (a dict as `aoncim train` writes it, or its file), after checking all
    of it; the first problem is raised as one `CheckpointError` line naming the entry and the fix.

    task: the task the caller needs (a Task or its name); None accepts either.
    """
    if isinstance(task, str):
        try:
            task = get_task(task)
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    if isinstance(obj_or_path, (str, Path)):
        return read_checkpoint(obj_or_path, task)[0]
    return _validate_object(obj_or_path, task, "checkpoint")


def _validate_object(obj, task: Task | None, where: str) -> Task:
    try:
        found, problems = _check(obj, task)
        first = next(problems, None)
        if first is not None:
            more = sum(1 for _ in problems)
            also = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
            raise CheckpointError(_join(where, first) + also)
        return found
    except CheckpointError as e:
        raise CheckpointError(_join(where, str(e))) from None
    except Exception as e:  # noqa: BLE001 - whatever a hostile file holds, the answer is one line
        detail = _short(next((line.strip() for line in str(e).splitlines() if line.strip()), ""), 120)
        raise CheckpointError(f"{where}: malformed ({type(e).__name__}{': ' + detail if detail else ''}); "
                              "train it again or restore it") from None


def _join(where: str, msg: str) -> str:
    """'checkpoint x.pt is for task ...' / 'checkpoint x.pt: hwa_state[...] ...'."""
    if msg.startswith(where):
        return msg
    return f"{where} {msg}" if msg.split(" ", 1)[0] in ("is", "holds", "says", "has") else f"{where}: {msg}"


_RETRAIN = "the file is damaged or was edited; train it again or restore it"


def _check(ck, want: Task | None) -> tuple[Task, Iterator[str]]:
    """The checkpoint's task (structural problems raise at once) and its remaining problems, lazily."""
    if not isinstance(ck, dict):
        raise CheckpointError(f"holds a {type(ck).__name__}, not the dict `aoncim train` writes; "
                              "give a checkpoint of `aoncim train`")
    for key, kind in ENTRIES.items():
        if key not in ck:
            raise CheckpointError(f"entry {key!r} missing: not a complete checkpoint of `aoncim train`; "
                                  "train it again or restore it")
        v = ck[key]
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise CheckpointError(f"entry {key!r} is a {type(v).__name__}, not a {kind.__name__}: {_RETRAIN}")
    extra = sorted(str(k)[:40] for k in set(ck) - set(ENTRIES))
    if extra:
        raise CheckpointError(f"unknown entries {extra}: not a checkpoint of this aoncim; upgrade aoncim or retrain")
    if ck["format"] != FORMAT:
        raise CheckpointError(f"format {_short(ck['format'])} unknown (this aoncim reads format {FORMAT}); "
                              "upgrade aoncim or train the checkpoint again")
    name = ck["task"]
    if name not in TASK:
        raise CheckpointError(f"task {_short(name)} unknown (choose one of {', '.join(TASKS)}): fix its 'task' entry "
                              "or train it again")
    task = TASK[name]
    fp, hwa = expected_tensors(task.name)
    if _first_structural(ck["fp_state"], fp) or _first_structural(ck["hwa_state"], hwa):
        # A checkpoint whose tensors are all another task's had its 'task' entry changed.
        other = [t for t in TASKS if t != task.name and not _first_structural(ck["fp_state"], expected_tensors(t)[0])
                 and not _first_structural(ck["hwa_state"], expected_tensors(t)[1])]
        if other:
            raise CheckpointError(f"says task {task.name!r} but holds the tensors of {TASK[other[0]].title}: "
                                  f"set its 'task' entry to {other[0]!r} or train it again")
    if want is not None and task.name != want.name:
        raise CheckpointError(f"is for task {task.name!r}, not {want.name!r}: give a {want.name} checkpoint, or "
                              f"use this one as the {task.name} checkpoint it is")
    return task, _problems(ck, task, fp, hwa)


def _first_structural(sd: dict, spec: dict) -> str | None:
    for k in spec:
        if k not in sd:
            return k
        v = sd[k]
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != spec[k][0]:
            return k
    return next((str(k) for k in sd if k not in spec), None)


def _problems(ck: dict, task: Task, fp: dict, hwa: dict) -> Iterator[str]:
    yield from _recipe_problems(ck["recipe"])
    for entry, spec in (("fp_state", fp), ("hwa_state", hwa)):
        yield from _state_problems(entry, ck[entry], spec, task)
    yield from _scaler_problems(ck["scaler"], task)


def _state_problems(entry: str, sd: dict, spec: dict, task: Task) -> Iterator[str]:
    for k in sd:
        if not isinstance(k, str):
            yield f"{entry} has a key {_short(k)} of type {type(k).__name__}; tensor names are strings: {_RETRAIN}"
        elif k not in spec:
            yield f"{entry}[{_short(k)}] is not a tensor of {task.title}: {_RETRAIN}"
    for k, (shape, counter) in spec.items():
        ref = f"{entry}[{k!r}]"
        if k not in sd:
            yield f"{ref} missing ({task.title} has a {_fmt_shape(shape)} tensor there): {_RETRAIN}"
            continue
        t = sd[k]
        if not isinstance(t, torch.Tensor):
            yield f"{ref} is a {type(t).__name__}, not a tensor: {_RETRAIN}"
            continue
        if t.layout != torch.strided or t.is_quantized or t.device.type == "meta":
            yield f"{ref} is a {t.layout} / {t.device.type} tensor, not a plain dense one: {_RETRAIN}"
            continue
        if tuple(t.shape) != shape:
            yield f"{ref} has shape {_fmt_shape(t.shape)}, {task.title} needs {_fmt_shape(shape)}: {_RETRAIN}"
            continue
        yield from _value_problems(ref, t, k, counter)


def _value_problems(ref: str, t: torch.Tensor, key: str, counter: bool) -> Iterator[str]:
    if counter:  # batch norm's step counter: an integer, never used by inference
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            yield f"{ref} is {t.dtype}, batch norm's step counter is an integer: {_RETRAIN}"
        elif int(t.min()) < 0:
            yield f"{ref} is {int(t.min())}, a step count must be >= 0: {_RETRAIN}"
        return
    if not t.dtype.is_floating_point:
        yield f"{ref} is {t.dtype}, not a floating-point tensor: {_RETRAIN}"
        return
    v = t.detach().double()
    bad = ~torch.isfinite(v)
    if bool(bad.any()):
        n = int(bad.sum())
        at = _at(ref, bad)
        yield f"{at} = {float(v[_index(bad)]):g}" + (f" ({n} non-finite entries)" if n > 1 else "") + f": {_RETRAIN}"
        return
    a = v.abs()
    if bool((a > VALUE_LIMIT).any()):
        top = a == a.max()
        yield (f"{_at(ref, top)} = {float(v[_index(top)]):.3g}, beyond +-2**16: more than the chip's per-channel "
               f"post-processing (16-bit scale, 32-bit bias) can apply; {_RETRAIN}")
        return
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var" and bool((v < 0).any()):
        neg = v < 0
        yield f"{_at(ref, neg)} = {float(v[_index(neg)]):.3g}: a batch-norm variance must be >= 0; {_RETRAIN}"
    elif leaf == "input_range" and not float(v) >= 1 / VALUE_LIMIT:
        yield (f"{ref} = {float(v):.3g}: a layer's DAC full scale must be at least 2**-16 (training calibrates it "
               f"to its inputs' range; a smaller one overflows the previous layer's post-processing scale); {_RETRAIN}")


def _index(mask: torch.Tensor) -> tuple[int, ...]:
    """First True position of a mask, as an index tuple (() for a 0-d tensor)."""
    return tuple(int(i) for i in torch.nonzero(mask)[0]) if mask.dim() else ()


def _at(ref: str, mask: torch.Tensor) -> str:
    """`hwa_state['3.weight'][0, 1, 2, 2]`: the entry where the mask is first True."""
    idx = _index(mask)
    return f"{ref}[{', '.join(map(str, idx))}]" if idx else ref


def _short(v, n: int = 60) -> str:
    """repr of a value for a message: one line, not too long (a hostile file picks the value)."""
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _recipe_problems(r: dict) -> Iterator[str]:
    fields = HwaRecipe.__dataclass_fields__
    unknown = sorted(str(k)[:40] for k in r if k not in fields)
    if unknown:
        yield f"has recipe fields {unknown} this aoncim does not know: upgrade aoncim"
        return
    missing = [f for f in fields if f not in r and f not in LEGACY_RECIPE_FIELDS]
    if missing:
        yield f"recipe[{missing[0]!r}] missing: {_RETRAIN}"
        return

    def number(name, ok, need):
        v = r[name]
        if not _is_number(v) or not math.isfinite(v) or not ok(v):
            return f"recipe[{name!r}] = {_short(v)}: need {need}; {_RETRAIN}"
        return None

    def integer(name, lo, hi):
        v = r[name]
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            return f"recipe[{name!r}] = {_short(v)}: need an integer in {lo}..{hi}; {_RETRAIN}"
        return None

    # Bounds a run can have: epochs and batch sizes far beyond any, seeds torch.manual_seed takes.
    checks = [integer("fp_epochs", 0, 10**6), integer("hwa_epochs", 0, 10**6), integer("batch_size", 1, 2**31 - 1),
              integer("seed", -(2**63), 2**64 - 1),
              number("fp_lr", lambda v: v >= 0, "a learning rate >= 0"),
              number("hwa_lr", lambda v: v >= 0, "a learning rate >= 0"),
              number("weight_decay", lambda v: v >= 0, "a number >= 0"),
              number("weight_noise", lambda v: v >= 0, "a noise level >= 0 (relative to w_max)"),
              number("weight_clip_sigma", lambda v: v > 0, "a number of standard deviations > 0"),
              number("label_smoothing", lambda v: 0 <= v <= 1, "a number in [0, 1]")]
    # The precision trained with: any a chip config can have (2..12 DAC bits); the commands set
    # the precision each run uses themselves.
    bits = r["act_bits"]
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 12:
        checks.append(f"recipe['act_bits'] = {_short(bits)}: need an activation precision of 2..12 bits; {_RETRAIN}")
    if "per_column" in r and not isinstance(r["per_column"], bool):
        checks.append(f"recipe['per_column'] = {_short(r['per_column'])}: need True or False; {_RETRAIN}")
    if "pcm_train_times" in r and r["pcm_train_times"] is not None:
        t = r["pcm_train_times"]
        if not (isinstance(t, (list, tuple)) and len(t) == 2 and all(_is_number(x) and math.isfinite(x) for x in t)
                and 0 < t[0] <= t[1] <= MAX_TIME_S):
            checks.append(f"recipe['pcm_train_times'] = {_short(t)}: need None or (t_lo, t_hi) seconds with "
                          f"0 < t_lo <= t_hi <= {MAX_TIME_S:.3g} (10 years, the PCM model's range); {_RETRAIN}")
    yield from (c for c in checks if c)


def _scaler_problems(s: dict, task: Task) -> Iterator[str]:
    n = input_features(task)
    if set(s) != {"lo", "hi"}:
        yield f"scaler has entries {_short(sorted(map(str, s)))}, need exactly 'lo' and 'hi'; {_RETRAIN}"
        return
    vals = {}
    for k in ("lo", "hi"):
        v = s[k]
        if not isinstance(v, (list, tuple)) or not all(_is_number(x) for x in v):
            yield f"scaler[{k!r}] is not a list of numbers: {_RETRAIN}"
            return
        if len(v) != n:
            yield (f"scaler[{k!r}] has {len(v)} entries, {task.title} has {n} input features per row "
                   f"({'MFCC coefficients' if task.name == 'kws' else 'image columns'}): {_RETRAIN}")
            return
        # The scaler runs in float32: a bound that float32 cannot hold is as broken as a NaN.
        vals[k] = torch.tensor([float(x) for x in v], dtype=torch.float64).float()
        bad = ~torch.isfinite(vals[k])
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            yield f"scaler[{k!r}][{i}] = {_short(v[i])} is not a finite float32: {_RETRAIN}"
            return
    width = vals["hi"] - vals["lo"]
    bad = ~(torch.isfinite(width) & (width > 0))
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        yield (f"scaler['hi'][{i}] = {s['hi'][i]!r} is not above scaler['lo'][{i}] = {s['lo'][i]!r}: every input "
               f"feature needs a range hi > lo; {_RETRAIN}")
