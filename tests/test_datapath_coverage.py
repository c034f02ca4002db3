"""Datapath coverage (sim/coverage.py, model/bittrue.py `DatapathEvents`) and the rails cases of
the random generator (sim/random_nets.py) that fill it: no simulator.

The co-simulation test that every datapath bin is hit by bit-exact inferences is
tests/test_cosim_random.py::test_random_networks_bit_exact.
"""
import numpy as np
import pytest
import torch

from aoncim.model import bittrue
from aoncim.model.bittrue import BitTrueExecutor, DatapathEvents, PostProcessing
from aoncim.program import LayerDescriptor, Op
from aoncim.sim import coverage as cov
from aoncim.sim.random_nets import RANDOM_CFG, is_graph_seed, random_case

from test_cosim_random import SUITE_SEEDS

CFG = RANDOM_CFG
RAIL_EVENTS = ("adc +sat", "adc -sat", "adc +max", "adc -max")


def suite_events(seeds=SUITE_SEEDS):
    """(case, its golden model's events) of every case the default co-simulation suite runs."""
    out = []
    for s in seeds:
        c = random_case(s)
        ev = DatapathEvents()
        BitTrueExecutor(CFG, c.prog, events=ev).run_batch(np.stack(c.inputs), c.noise_seeds)
        out.append((c, ev.counts))
    return out


@pytest.fixture(scope="module")
def suite():
    return suite_events()


def test_before_shift_is_the_transfer_before_rounding_and_clamp():
    t = CFG.adc_transfer
    rng = np.random.default_rng(0)
    col = torch.from_numpy(rng.integers(-(1 << 21), 1 << 21, 5000))
    noise = torch.from_numpy(rng.integers(-510, 511, 5000))
    for bits in CFG.act_bits_supported:
        v = t.before_shift(col, noise, bits)
        want = ((v + t.rounding) >> t.gain_shift).clamp(-t.adc_max, t.adc_max)
        assert torch.equal(t.transfer(col, noise, bits), want)
    assert t.before_shift(3, -2, 8) == 3 * t.gain(8) - 2 * t.noise_mult


def test_adc_events_on_chosen_values():
    """Each ADC bin counts exactly the values it names: v is the value before the shift."""
    t, ev = CFG.adc_transfer, DatapathEvents()
    sh, m, half = t.gain_shift, t.adc_max, 1 << (t.gain_shift - 1)
    lsb = 1 << sh
    v = torch.tensor([
        (m + 1) * lsb,            # +sat
        (m + 5) * lsb - half,     # +sat, and a tie the clamp hides (128 or 129): no tie
        -(m + 1) * lsb,           # -sat
        m * lsb - 1,              # +max unclamped (rounds up to 127)
        -m * lsb,                 # -max unclamped
        3 * lsb + half,           # tie between 3 and 4
        -3 * lsb - half,          # tie between -4 and -3 (rounds to -3)
        -m * lsb - half,          # tie between -128 and -127: clamped to -127 either way, no tie; -max
        m * lsb - half,           # tie between 126 and 127 (rounds to 127): a tie and +max
        5 * lsb + half + 1,       # not a tie
    ])
    ev.adc(v, t, 6)
    assert ev.counts == {"adc +sat 6b": 2, "adc -sat 6b": 1, "adc +max": 2, "adc -max": 2, "adc tie": 3}
    ev.tile_sum(torch.tensor([3 * m, -3 * m, 3 * m - 1, m]), 3, m)
    ev.tile_sum(torch.tensor([m]), 1, m)  # one tile: no tile sum
    assert (ev.counts["tile-sum +max"], ev.counts["tile-sum -max"]) == (1, 1)


def desc(**kw):
    base = dict(opcode=Op.MVM.value, in_bits=8, out_bits=4, stride=1, pad_h=0, pad_w=0, relu=0, to_out=0, in_bank=0,
                out_bank=1, shift=2, in_h=1, in_w=1, in_c=4, k_h=1, k_w=1, out_h=1, out_w=1, out_c=1, k_rows=4, row0=0,
                col0=0, param_base=0, in_base=0, out_base=0)
    return LayerDescriptor(**{**base, **kw})


def test_postproc_events_on_chosen_values():
    """alpha = 1.0, shift 2: y = (code*scale + bias + 2) >> 2; ties at code*scale + bias = 2 mod 4."""
    pp, one = PostProcessing(CFG), CFG.alpha_one
    codes = torch.tensor([0, 1, 2, 60, 61, -3, -8])
    ev = DatapathEvents()
    y = pp(codes, torch.tensor(1), torch.tensor(0), desc(), one, ev)
    # 4-bit activations: 0/4, 1/4 -> 0; 2/4 a tie (0 or 1, both in range) -> 1; 60/4, 61/4 -> 15;
    # -3/4 -> -1 and -8/4 -> -2, both clamped to 0.
    assert y.tolist() == [0, 0, 1, 15, 15, 0, 0]
    assert ev.counts == {"pp tie": 1, "act <0": 2}
    ev = DatapathEvents()
    pp(torch.tensor([62, 66, -2]), torch.tensor(1), torch.tensor(0), desc(), one, ev)
    # 62/4 = 15.5: a tie between 15 and 16, 16 clamped: not counted; 16.5 -> 17 > 15; -0.5: tie -1/0, -1 clamped
    assert ev.counts == {"act >max 4b": 2}
    out = dict(to_out=1, out_bits=CFG.out_bits)
    big = 1 << (CFG.out_bits + 2)  # big/4 is twice the output range
    ev = DatapathEvents()
    pp(torch.tensor([big, -big, 6]), torch.tensor(1), torch.tensor(0), desc(**out), one, ev)
    assert ev.counts == {"out >max": 1, "out <min": 1, "pp tie": 1}
    ev = DatapathEvents()
    pp(torch.tensor([big, -8, 6]), torch.tensor(1), torch.tensor(0), desc(relu=1, **out), one, ev)
    assert ev.counts == {"out >max": 1, "out relu<0": 1, "pp tie": 1}


def test_events_leave_the_golden_model_unchanged():
    """Counting reads the values, it does not change them: every layer's outputs and codes as
    without events, on rails cases and others."""
    ev = DatapathEvents()
    for s in (0, 10, 27, 32):  # 10, 27 and 32 are rails cases
        c = random_case(s, n_inputs=3)
        x = np.stack(c.inputs)
        plain = BitTrueExecutor(CFG, c.prog).run_batch(x, c.noise_seeds)
        counted = BitTrueExecutor(CFG, c.prog, events=ev).run_batch(x, c.noise_seeds)
        for a, b in zip(plain, counted):
            assert torch.equal(a.output, b.output)
            assert (a.adc_codes is None) == (b.adc_codes is None)
            assert a.adc_codes is None or torch.equal(a.adc_codes, b.adc_codes)
    assert len(ev.counts) > 5


def test_datapath_report_merge_summary_missing():
    bins = cov.datapath_bins()
    assert len(bins) == len(set(bins)) == 19
    r = cov.datapath_to_json({"adc tie": 2, "act <0": 7})
    assert (r["hit"], r["total"]) == (2, 19)
    assert cov.datapath_summary(r) == "datapath coverage: 2/19 bins (10.5 %)"
    m = cov.datapath_merge([r, cov.datapath_to_json({"adc tie": 1, "pp tie": 1})])
    assert {b["bin"]: b["hits"] for b in m["bins"] if b["hits"]} == {"adc tie": 3, "act <0": 7, "pp tie": 1}
    assert "adc +sat 8b" in cov.datapath_missing(m) and "adc tie" not in cov.datapath_missing(m)
    # A co-simulation's report carries the datapath under "datapath"; merging keeps it.
    seq = cov.to_json({})
    both = cov.merge([dict(seq, datapath=r), dict(seq, datapath=r)])
    assert both["total"] == 114 and both["datapath"]["hit"] == 2
    assert next(b["hits"] for b in both["datapath"]["bins"] if b["bin"] == "act <0") == 14
    assert "datapath" not in cov.merge([seq])


def test_datapath_counts_only_matching_inferences():
    """Only inferences the RTL matched count (a result's `inferences` ok flags)."""
    from aoncim.sim.cosim import CosimCase

    c = random_case(0, n_inputs=2)
    case = CosimCase(c.name, c.prog, c.inputs, c.noise_seeds)

    class Res:
        prog = c.prog
        inferences = [{"ok": True}, {"ok": False}]

    one = cov.datapath_counts(CFG, [case], [Res()])
    ev = DatapathEvents()
    BitTrueExecutor(CFG, c.prog, events=ev).run_batch(c.inputs[0][None], c.noise_seeds[:1])
    assert one == ev.counts
    Res.inferences = [{"ok": False}, {"ok": False}]
    assert cov.datapath_counts(CFG, [case], [Res()]) == {}


def test_rails_cases_are_deterministic_legal_and_replayable():
    seqs = [s for s in range(40) if not is_graph_seed(s)][:12]  # rails cases are sequential
    rails = [s for s in seqs if "rails" in random_case(s).randomised]
    assert 3 <= len(rails) <= 9  # about half
    for s in rails[:3]:
        a, b = random_case(s), random_case(s)
        a.prog.check(CFG)
        assert a.prog == b.prog and a.noise_seeds == b.noise_seeds
        assert all(np.array_equal(x, y) for x, y in zip(a.inputs, b.inputs))
        # The same network as without the rails: only values moved (and a depthwise layer the
        # randomisation may insert).
        plain = random_case(s, randomise=False)
        ops = lambda c: [d.opcode for d in c.prog.layers if d.opcode != Op.DWCONV.value]  # noqa: E731
        assert ops(a) == ops(plain)


def test_generator_hits_every_datapath_bin_on_the_default_suite(suite):
    """Every datapath bin is reached by the golden model on the cases the co-simulation suite runs
    (what test_random_networks_bit_exact then asserts for the bit-exact inferences)."""
    total: dict[str, int] = {}
    for _, counts in suite:
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    report = cov.datapath_to_json(total)
    assert report["hit"] == report["total"] == 19, cov.datapath_missing(report)


def test_adc_clamp_one_short_changes_the_outputs(monkeypatch, suite):
    """A golden model whose ADC clamps at adc_max - 1 (the issue's mutant) differs from the
    reference in some layer's outputs -- not only in its codes -- in every default-suite case that
    reaches an ADC rail: the co-simulation, which compares every layer, would catch it."""
    reference = [[t.output for t in BitTrueExecutor(CFG, c.prog).run_batch(np.stack(c.inputs), c.noise_seeds)]
                 for c, _ in suite]
    real = bittrue.AdcTransfer.__call__

    def one_short(self, col_sum, noise_raw, in_bits, events=None):
        m = self.transfer.adc_max - 1
        return real(self, col_sum, noise_raw, in_bits, events).clamp(-m, m)

    monkeypatch.setattr(bittrue.AdcTransfer, "__call__", one_short)
    on_rail = differ = 0
    for (c, counts), ref in zip(suite, reference):
        short = [t.output for t in BitTrueExecutor(CFG, c.prog).run_batch(np.stack(c.inputs), c.noise_seeds)]
        changed = any(not torch.equal(a, b) for a, b in zip(ref, short))
        rail = any(k.startswith(RAIL_EVENTS) for k in counts)
        assert changed == rail, (c.describe(CFG.rows), counts)
        on_rail, differ = on_rail + rail, differ + changed
    assert on_rail >= 8, on_rail
