"""Functional coverage of the layer sequencer (with cocotb-coverage) and of the datapath.

A layer that ran on the RTL and matched the golden model is one sample: its kind (from the
descriptor), stride, padding (none, pad_h = pad_w, or pad_h != pad_w), pad code (the code padded
positions load: 0, or a non-zero zero point; only a padded layer loads it), row tiling (T = 1 or
T > 1) and activation precision. The bins are the cross of the six, less the combinations the chip
cannot run (docs/architecture.md, "Co-simulation"): pooling and the residual add have no padding,
only the array has row tiles (a depthwise convolution pads, strides and has no tiles), a linear
layer (a convolution whose kernel is its whole input) has stride 1 and no padding, global average
pooling and the residual add stride 1, and an unpadded layer loads no pad code. Kinds and exclusions both follow from the op vocabulary (`Op.kinds` and the ops'
properties; the residual add's fixed window is the one rule written out).

The testbench (sim/tb_top.py) samples in the simulator's process and returns the hit counts in its
results; `merge` adds up the counts of several runs; `summary` is the one-line report.

The datapath bins (below: ADC rails and rounding ties, row-tile sums at their extreme, every clamp
and the rounding tie of post-processing) are counted by the golden model on the host, for the
inferences that ran bit-exact (`cosim_coverage`, under the report's "datapath" key).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable

from aoncim.program import LayerDescriptor, Op

def _kinds() -> tuple[str, ...]:
    """Every op's kinds (`Op.kinds`), in opcode order, each once."""
    return tuple(dict.fromkeys(k for op in Op for k in op.kinds))


KINDS = _kinds()
STRIDES = (1, 2)
PADS = ("pad=0", "pad h=w", "pad h!=w")
PAD_CODES = ("code=0", "code>0")
TILINGS = ("T=1", "T>1")
BITS = (8, 6, 4)
AXES = ("kind", "stride", "pad", "pad_code", "tiling", "bits")
VALUES = (KINDS, STRIDES, PADS, PAD_CODES, TILINGS, BITS)


def _rule(**axes) -> tuple:
    """An ignore bin: the named axes' values, None (any value) on the others."""
    assert set(axes) <= set(AXES)
    return tuple(axes.get(a) for a in AXES)


def _illegal() -> list[tuple]:
    """The combinations the chip cannot run, from the ops' properties: only an op that uses the
    array has row tiles, an op that does not pad (pooling, the residual add) has no padding, a whole-input
    window (one position) has neither stride nor padding, a residual add's window is its operand
    pair at stride 1, and an unpadded layer loads no pad code. In cocotb-coverage's ignore-bin form
    (None: any value)."""
    padded = [p for p in PADS if p != "pad=0"]
    rules = [_rule(pad="pad=0", pad_code="code>0")]
    for op in Op:
        sliding, whole = op.kinds
        if not op.uses_array:
            rules.append(_rule(kind=sliding, tiling="T>1"))
        if not op.pads:
            rules += [_rule(kind=sliding, pad=p) for p in padded]
        if op is Op.ADD:   # LayerDescriptor.check: a 2x1 window over the 2 x positions x C view, stride 1
            rules.append(_rule(kind=sliding, stride=2))
        if whole != sliding:
            rules += [_rule(kind=whole, pad=p) for p in padded] + [_rule(kind=whole, stride=2)]
            if not op.uses_array:
                rules.append(_rule(kind=whole, tiling="T>1"))
    return list(dict.fromkeys(rules))


# A new op brings its bins through `Op.kinds` and its properties; nothing here changes.
ILLEGAL = _illegal()

_instances = itertools.count()


def layer_kind(d: LayerDescriptor) -> str:
    if d.opcode not in Op.known():
        raise ValueError(f"opcode {d.opcode} has no coverage kind")
    return d.kind


def layer_point(d: LayerDescriptor, rows: int) -> tuple:
    """The bin a layer falls in: (kind, stride, pad, pad code, tiling, bits); strides above 2 count
    as 2, and a window over the whole input (linear, global average pooling) has one position, so
    stride 1; the pad code counts only on a padded layer (no other loads it)."""
    kind = layer_kind(d)
    stride = 1 if d.whole_window else min(d.stride, 2)
    padded = bool(d.pad_h or d.pad_w)
    pad = "pad=0" if not padded else "pad h=w" if d.pad_h == d.pad_w else "pad h!=w"
    return (kind, stride, pad, "code>0" if padded and d.pad_code else "code=0",
            "T>1" if d.is_mvm and d.tiles(rows) > 1 else "T=1", d.in_bits)


def legal(point: tuple) -> bool:
    return not any(all(a is None or a == b for a, b in zip(ign, point)) for ign in ILLEGAL)


def all_bins() -> list[tuple]:
    return [p for p in itertools.product(*VALUES) if legal(p)]


class SequencerCoverage:
    """Cover points on each axis and their cross (cocotb-coverage's coverage_db, under a name of
    its own per instance so that several instances in one process do not share hits)."""

    def __init__(self, rows: int, name: str = "aoncim.sequencer"):
        from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db

        self.rows = rows
        self.name = f"{name}{next(_instances) or ''}"
        self._db = coverage_db
        n = self.name
        decorators = [CoverPoint(f"{n}.{axis}", xf=lambda p, i=i: p[i], bins=list(values))
                      for i, (axis, values) in enumerate(zip(AXES, VALUES))]
        decorators.append(CoverCross(f"{n}.cross", items=[f"{n}.{a}" for a in AXES], ign_bins=ILLEGAL))

        def sample(point):
            pass

        for dec in reversed(decorators):
            sample = dec(sample)
        self._sample = sample

    def sample(self, d: LayerDescriptor) -> tuple:
        p = layer_point(d, self.rows)
        self._sample(p)
        return p

    def hits(self) -> dict[tuple, int]:
        return dict(self._db[f"{self.name}.cross"].detailed_coverage)

    def to_json(self) -> dict:
        return to_json(self.hits())


def to_json(hits: dict[tuple, int]) -> dict:
    """Every legal bin with its hit count, and the totals."""
    bins = [dict(zip(AXES, b), hits=int(hits.get(b, 0))) for b in all_bins()]
    hit = sum(b["hits"] > 0 for b in bins)
    return {"axes": list(AXES), "bins": bins, "hit": hit, "total": len(bins),
            "percent": round(100.0 * hit / len(bins), 2)}


def from_json(report: dict) -> dict[tuple, int]:
    return {tuple(b[a] for a in AXES): b["hits"] for b in report["bins"]}


def merge(reports: Iterable[dict]) -> dict:
    """The sequencer bins summed; the datapath bins too where the reports carry them."""
    reports = list(reports)
    total: dict[tuple, int] = {}
    for r in reports:
        for k, v in from_json(r).items():
            total[k] = total.get(k, 0) + v
    merged = to_json(total)
    if any("datapath" in r for r in reports):
        merged["datapath"] = datapath_merge(r["datapath"] for r in reports if "datapath" in r)
    return merged


def summary(report: dict) -> str:
    return f"sequencer coverage: {report['hit']}/{report['total']} bins ({report['percent']:.1f} %)"


def missing(report: dict) -> list[str]:
    return [" ".join(str(b[a]) for a in AXES) for b in report["bins"] if not b["hits"]]


# ------------------------------------------------------------------------------ datapath
# The corners of the datapath's arithmetic (contract steps 5, 6 and 12): ADC saturation on either
# rail per input precision, the rail code reached without clamping, an exact ADC rounding tie, row
# tiles all on one rail, an exact post-processing rounding tie and every clamp of post-processing
# (`model.bittrue.DatapathEvents` names and counts them). They are sampled from the golden model on
# the inferences the RTL ran bit-exact: the RTL did the same arithmetic on the same values. Random
# weights rarely reach them; sim/random_nets.py's rails cases plant them.

def datapath_bins(act_bits=BITS) -> list[str]:
    from aoncim.model.bittrue import DatapathEvents

    return DatapathEvents.bins(tuple(act_bits))


def datapath_counts(cfg, cases, results) -> dict[str, int]:
    """The golden model's datapath events over the inferences that matched: `cases` (CosimCase:
    inputs and read-noise seeds) with their `results` (CaseResult: the program scored against and
    each inference's ok)."""
    import numpy as np

    from aoncim.model.bittrue import BitTrueExecutor, DatapathEvents

    events = DatapathEvents()
    for c, res in zip(cases, results):
        ok = [i for i, inf in enumerate(res.inferences) if inf["ok"]]
        if ok:
            BitTrueExecutor(cfg, res.prog, events=events).run_batch(
                np.stack([np.asarray(c.inputs[i]) for i in ok]), [c.seeds[i] for i in ok])
    return events.counts


def datapath_to_json(counts: dict[str, int], act_bits=BITS) -> dict:
    """Every datapath bin with its hit count (values: conversions, tile sums, outputs), and the totals."""
    bins = [{"bin": b, "hits": int(counts.get(b, 0))} for b in datapath_bins(act_bits)]
    return _datapath_totals(bins)


def _datapath_totals(bins: list[dict]) -> dict:
    hit = sum(b["hits"] > 0 for b in bins)
    return {"bins": bins, "hit": hit, "total": len(bins), "percent": round(100.0 * hit / max(len(bins), 1), 2)}


def datapath_merge(reports: Iterable[dict]) -> dict:
    total: dict[str, int] = {}
    for r in reports:
        for b in r["bins"]:
            total[b["bin"]] = total.get(b["bin"], 0) + b["hits"]
    return _datapath_totals([{"bin": k, "hits": v} for k, v in total.items()])


def datapath_summary(report: dict) -> str:
    return f"datapath coverage: {report['hit']}/{report['total']} bins ({report['percent']:.1f} %)"


def datapath_missing(report: dict) -> list[str]:
    return [b["bin"] for b in report["bins"] if not b["hits"]]


def cosim_coverage(cfg, sequencer_reports: Iterable[dict], cases, results) -> dict:
    """The coverage of a co-simulation (`runner.run_job`): the sequencer's bins summed over the
    simulator runs, and under "datapath" the datapath's bins of the inferences that matched."""
    report = merge(sequencer_reports)
    report["datapath"] = datapath_to_json(datapath_counts(cfg, cases, results), cfg.act_bits_supported)
    return report
