"""The one ADC definition (aoncim/adc.py): the integer reference and the constants derived from it.

The twins are held to it elsewhere, one test per pair: the Amaranth lane in
tests/test_datapath_blocks.py, the float model in tests/test_analog.py, the Verilog twin of the
crossbar by the co-simulations (tests/test_cosim*.py) and its parameters in tests/test_verilog_cli.py.
"""
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest
import torch

from aoncim.config import AonCimConfig

from adc_helpers import ODD_ADC, adc_ties

CONFIGS = [pytest.param(AonCimConfig(), id="default"), pytest.param(ODD_ADC, id="odd")]


def spec(t, col_sum: int, noise: int, bits: int) -> int:
    """Contract step 5 spelled out in exact rationals: round half up, then clip."""
    x = Fraction(col_sum * t.gain_mult * 2 ** (t.dac_bits - bits) + noise * t.noise_mult, 2**t.gain_shift)
    return max(-t.adc_max, min(t.adc_max, int((x + Fraction(1, 2)).__floor__())))


@pytest.mark.parametrize("cfg", CONFIGS)
def test_transfer_is_the_contract_on_ints_numpy_and_torch(cfg):
    t = cfg.adc_transfer
    rng = np.random.default_rng(0)
    for bits in cfg.act_bits_supported:
        fs = int(t.full_scale_col_sum(bits))
        vec = [(int(rng.integers(-2 * fs, 2 * fs)), int(rng.integers(-510, 511))) for _ in range(500)]
        ties = adc_ties(t, bits, rng, 20)
        vec += ties + [(-c, -n) for c, n in ties]
        col, noise = zip(*vec)
        want = [spec(t, c, n, bits) for c, n in vec]
        assert [t.transfer(c, n, bits) for c, n in vec] == want
        assert t.transfer(np.array(col), np.array(noise), bits).tolist() == want
        assert t.transfer(torch.tensor(col), torch.tensor(noise), bits).tolist() == want
        assert max(want) == t.adc_max and min(want) == -t.adc_max
        # A tie rounds up (towards +infinity) on both signs.
        for c, n in ties:
            v = c * t.gain(bits) + n * t.noise_mult
            assert t.transfer(c, n, bits) == (v >> t.gain_shift) + 1
            assert t.transfer(-c, -n, bits) == (-v >> t.gain_shift) + 1


@pytest.mark.parametrize("cfg", CONFIGS)
def test_derived_constants_agree(cfg):
    """The real-valued views (compiler gain, calibration full scale, float bound and LSB) and the
    RTL's width all describe the same integer transfer."""
    t = cfg.adc_transfer
    for bits in cfg.act_bits_supported:
        assert t.gain(bits) < t.gain_bound
        assert t.code_gain(bits) * t.full_scale_col_sum(bits) == pytest.approx(t.adc_max, rel=1e-12)
        # At full-scale input the float model's y = 1 per row of full conductance: bound rows are full scale.
        assert t.full_scale_col_sum(bits) * 2 ** (t.dac_bits - bits) / t.unit_col_sum == pytest.approx(t.bound)
        fs = t.full_scale_col_sum(bits)
        assert t.transfer(int(fs * (1 - 1 / (4 * t.adc_max))), 0, bits) == t.adc_max
        assert t.transfer(-int(fs * (1 - 1 / (4 * t.adc_max))), 0, bits) == -t.adc_max
    assert t.lsb * t.adc_max == pytest.approx(t.bound)
    # The RTL's intermediate width holds the value before the shift for any port values.
    top = 1 << (t.col_sum_bits - 1)
    noise = 1 << (t.noise_bits - 1)
    extreme = top * (t.gain_bound - 1) + noise * t.noise_mult + t.rounding
    assert extreme < 1 << (t.v_bits - 1)
    # The config's ADC properties are the transfer's.
    assert (cfg.adc_max, cfg.adc_bound, cfg.noise_mult, cfg.out_noise_std) == \
        (t.adc_max, t.bound, t.noise_mult, t.out_noise_std)


# The Verilog twin of the crossbar (hw/pcm_array_model.v) on a crossbar small enough to set every
# column sum by hand: 8 rows x 8 columns, 8 ADCs (one conversion reads every column), 8 load lanes.
VERILOG_ADC = AonCimConfig(rows=8, cols=8, n_adcs=8, load_lanes=8, pp_lanes=8, act_depth=256, out_depth=64,
                           param_depth=128, max_layers=4, adc_bits=6, adc_gain_mult=12, adc_gain_shift=11,
                           read_noise_lsb=1.5, act_bits_supported=(8, 5, 3))
_X = [1] + [255] * 7  # row inputs: row 0 sets the column sum modulo 255, rows 1-7 the rest


def _pairs_for(col_sum: int) -> list[int]:
    """Per row, G+ - G- so that sum_k _X[k] * dg[k] == col_sum."""
    q, r = divmod(abs(col_sum), 255)
    dg = [r] + [min(255, max(0, q - 255 * k)) for k in range(7)]
    assert sum(x * d for x, d in zip(_X, dg)) == abs(col_sum)
    return [d if col_sum >= 0 else -d for d in dg]


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed (apt-get install iverilog)")
def test_verilog_crossbar_adc_matches_the_reference(tmp_path):
    """Golden vs the Verilog twin's ADC, directly: conductances written through the host port,
    one load of all rows, one conversion of all columns, for column sums and noise that make
    exact rounding ties and both rails (the co-simulations cover it only through whole networks)."""
    from aoncim.hw.pcm_array_verilog import MODEL_NAME, MODEL_SOURCE, model_parameters
    from aoncim.model.bittrue import ReadNoise

    cfg, t = VERILOG_ADC, VERILOG_ADC.adc_transfer
    rng = np.random.default_rng(7)
    cases = []  # (bits, mvm, seed, column sums)
    for i in range(36):
        bits, mvm, seed = cfg.act_bits_supported[i % 3], int(rng.integers(2**20)), int(rng.integers(2**32))
        noise = ReadNoise(cfg, seed).raw(np.full(cfg.cols, mvm), np.arange(cfg.cols))
        fs = int(t.full_scale_col_sum(bits))
        sums = []
        for n in noise:  # a tie where this column's noise allows one, else anywhere up to twice full scale
            tie = adc_ties(t, bits, rng, 1, noise=[int(n)])
            sums.append(tie[0][0] if tie else int(rng.integers(-2 * fs, 2 * fs + 1)))
        if i % 6 == 1:  # rails: the steps to +-adc_max and to +-(adc_max + 1), clipped
            per_code = t.full_scale_col_sum(bits) / t.adc_max
            sums[:4] = [int(s * (t.full_scale_col_sum(bits) + h * per_code)) for s in (1, -1) for h in (-0.5, 0.5)]
        cases.append((bits, mvm, seed, sums))

    p, g = model_parameters(cfg), cfg.gcode_bits
    steps = []  # the testbench's calls, in order
    for bits, mvm, seed, sums in cases:
        dg = [_pairs_for(s) for s in sums]  # [col][row]
        for row in range(cfg.rows):
            for col in range(cfg.cols):
                d = dg[col][row]
                steps.append(f"host(3'd{row}, 3'd{col}, {g}'d{max(0, -d)}, {g}'d{max(0, d)});")
        x = "".join(f"{cfg.dac_bits}'d{v}, " for v in reversed(_X))[:-2]
        steps.append(f"mvm({{{x}}}, 4'd{bits}, 32'd{mvm}, 32'd{seed});")
    params = ", ".join(f".{k}({v})" for k, v in p.items())
    lanes, nb = cfg.load_lanes * cfg.dac_bits, cfg.n_adcs * cfg.adc_bits
    tb = f"""`timescale 1ns/1ps
module tb;
    reg clk = 0, rst = 1, load_valid = 0, load_first = 0, load_bank = 0, conv_stb = 0, conv_bank = 0, host_w_stb = 0;
    reg [2:0] load_row = 0, host_row = 0, host_col = 0;
    reg [{lanes - 1}:0] load_x = 0;
    reg [0:0] conv_slot = 0;
    reg [3:0] conv_bits = 0;
    reg [31:0] conv_mvm = 0, noise_seed = 0;
    reg [{2 * cfg.gcode_bits - 1}:0] host_w_data = 0;
    wire [{nb - 1}:0] codes;
    wire [{2 * cfg.gcode_bits - 1}:0] host_r_data;
    {MODEL_NAME} #({params}) dut (.clk(clk), .rst(rst), .load_valid(load_valid), .load_first(load_first),
        .load_row(load_row), .load_bank(load_bank), .load_x(load_x), .conv_stb(conv_stb), .conv_slot(conv_slot),
        .conv_bank(conv_bank), .conv_bits(conv_bits), .conv_mvm(conv_mvm), .noise_seed(noise_seed), .codes(codes),
        .host_row(host_row), .host_col(host_col), .host_w_stb(host_w_stb), .host_w_data(host_w_data),
        .host_r_data(host_r_data));
    always #5 clk = ~clk;
    task host(input [2:0] r, input [2:0] c, input [{cfg.gcode_bits - 1}:0] gm, input [{cfg.gcode_bits - 1}:0] gp);
        begin
            host_row = r; host_col = c; host_w_data = {{gm, gp}}; host_w_stb = 1; @(posedge clk); #1 host_w_stb = 0;
        end
    endtask
    task mvm(input [{lanes - 1}:0] x, input [3:0] b, input [31:0] m, input [31:0] s);
        begin
            load_valid = 1; load_first = 1; load_row = 0; load_bank = 0; @(posedge clk); #1 load_valid = 0;
            load_x = x; @(posedge clk); #1;
            conv_stb = 1; conv_bits = b; conv_mvm = m; noise_seed = s; @(posedge clk); #1 conv_stb = 0;
            $display("%h", codes);
        end
    endtask
    initial begin
        @(posedge clk); #1 rst = 0;
        {chr(10).join("        " + s for s in steps)}
        $finish;
    end
endmodule
"""
    (tmp_path / "tb.v").write_text(tb)
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "tb.vvp"), str(tmp_path / "tb.v"), str(MODEL_SOURCE)],
                   check=True, capture_output=True, text=True)
    out = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp")], check=True, capture_output=True, text=True).stdout
    words = [int(w, 16) for w in out.split() if all(ch in "0123456789abcdef" for ch in w)]
    assert len(words) == len(cases)
    got, want, m = [], [], (1 << cfg.adc_bits) - 1
    for word, (bits, mvm, seed, sums) in zip(words, cases):
        raw = [(word >> (i * cfg.adc_bits)) & m for i in range(cfg.n_adcs)]  # ADC lane i = column i
        got.append([v - (1 << cfg.adc_bits) if v >> (cfg.adc_bits - 1) else v for v in raw])
        noise = ReadNoise(cfg, seed).raw(np.full(cfg.cols, mvm), np.arange(cfg.cols))
        want.append(t.transfer(np.array(sums), noise, bits).tolist())
    assert got == want
    flat = [(s, bits, n) for bits, mvm, seed, sums in cases
            for s, n in zip(sums, ReadNoise(cfg, seed).raw(np.full(cfg.cols, mvm), np.arange(cfg.cols)))]
    ties = sum((s * t.gain(b) + int(n) * t.noise_mult) % (1 << t.gain_shift) == t.rounding for s, b, n in flat)
    assert ties >= 15 and {t.adc_max, -t.adc_max} <= {c for row in want for c in row}
