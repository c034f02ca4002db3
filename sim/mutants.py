"""The mutation catalogue: single-point bugs the default suite's verification must catch.

Each `Mutant` is one edit of one file (operators, constants, comparisons, offsets, widths) in a
block of the chip or of the golden model; benchmarks/mutation.py (`make mutate`) applies each to a
private copy of the package and runs `KILL_TESTS` until one fails. A mutant no test kills is
either a hole (write the test that kills it) or equivalent to the original (then it does not
belong here: remove it and say why in the commit).
"""
from __future__ import annotations

from .mutation import Mutant

# Fast tests first: a mutant stops at its first failing test.
KILL_TESTS = [
    "tests/test_contract_constants.py",
    "tests/test_formal_axil.py::test_axil_contract_holds",
    "tests/test_host_registers.py::test_every_register_has_its_effect_at_the_tables_offset",
    "tests/test_host_registers.py::test_every_window_is_decoded_at_its_region",
    "tests/test_axil.py",
    "tests/test_regmap.py",
    "tests/test_adc.py",
    "tests/test_datapath_blocks.py",
    "tests/test_desc_check_stage.py",
    "tests/test_im2col_stage.py",
    "tests/test_pool_bank_stage.py",
    "tests/test_array_control_stage.py",
    "tests/test_tile_accumulator_stage.py",
    "tests/test_pool_issue_stage.py",
    "tests/test_sequencer_stage.py",
    "tests/test_formal_stages.py::test_stage_handshake_contract",
    "tests/test_core_amaranth.py",
    "tests/test_bittrue_ops.py",
    "tests/test_datapath_coverage.py",
    "tests/test_cosim_random.py::test_random_networks_bit_exact",
    "tests/test_cosim_array_twins.py::test_amaranth_twin_bit_exact_on_small_nets",
    "tests/test_cosim_add_pad.py::test_pad_code_asymmetric_padding_and_residual_add_bit_exact",
    "tests/test_cosim_dwconv.py::test_depthwise_programs_bit_exact",
    "tests/test_cosim_pool_fold.py::test_fold_programs_bit_exact",
    "tests/test_formal_sequencer.py::test_sequencer_never_hangs",
]

CATALOGUE = [
    # ---------------------------------------------------------------- host port: AXI4-Lite (hw/axil.py)
    Mutant("axil_b_no_wait", "axi-lite", "hw/axil.py", "with m.If(ax.bready):", "with m.If(1):"),
    Mutant("axil_strobe_ignored", "axi-lite", "hw/axil.py", "bus.w_stb.eq(whole)", "bus.w_stb.eq(1)"),
    Mutant("axil_read_addr_lsb", "axi-lite", "hw/axil.py", "bus.addr.eq(ax.araddr[self._lsb:])",
           "bus.addr.eq(ax.araddr[self._lsb - 1:])"),
    Mutant("axil_rdata_stale", "axi-lite", "hw/axil.py", "m.d.sync += rdata.eq(bus.r_data)", "pass"),
    # ---------------------------------------------------------------- host registers (hw/host.py)
    Mutant("host_alpha_offset", "host regs", "hw/host.py", "alpha_off.eq(word - ALPHA_BASE)",
           "alpha_off.eq(word - ALPHA_BASE - 1)"),
    Mutant("host_alpha_last", "host regs", "hw/host.py", "(word < ALPHA_BASE + cfg.max_layers)",
           "(word < ALPHA_BASE + cfg.max_layers - 1)"),
    Mutant("host_irq_mask", "host regs", "hw/host.py", "self.irq.eq((irq_status & irq_enable).any())",
           "self.irq.eq(irq_status.any())"),
    Mutant("host_mvm_base", "host regs", "hw/host.py", "run.mvm_base.eq(bus.w_data)", "run.mvm_base.eq(bus.w_data + 1)"),
    # The region select one bit short: the DWW window (region 8) aliases REGS.
    Mutant("host_region_bits", "host regs", "hw/host.py", "region = Signal(REGION_BITS)", "region = Signal(3)"),
    # ---------------------------------------------------------------- sequencer: layer FSM (hw/sequencer.py)
    Mutant("seq_num_layers_limit", "layer fsm", "hw/sequencer.py", "run.num_layers > c.max_layers",
           "run.num_layers > c.max_layers + 1"),
    Mutant("seq_last_layer", "layer fsm", "hw/sequencer.py", "layer == n_layers - 1", "layer == n_layers - 2"),
    Mutant("seq_noise_counter", "layer fsm", "hw/sequencer.py", "noise_mvm.eq(noise_mvm + 1)", "noise_mvm.eq(noise_mvm + 2)"),
    Mutant("seq_cycles_paused", "layer fsm", "hw/sequencer.py", "with m.If(busy & ~paused):", "with m.If(busy):"),
    Mutant("seq_padding_lanes", "stage L", "hw/sequencer.py",
           "Mux(lane_ok_q[j], self.act_rdata[j], Mux(lane_pad_q[j], d.pad_code, 0))", "self.act_rdata[j]"),
    # Padded lanes load 0 instead of the layer's pad code (the contract before pad_code).
    Mutant("seq_pad_code_zero", "stage L", "hw/sequencer.py", "Mux(lane_pad_q[j], d.pad_code, 0)", "0"),
    # Lanes past the run load the pad code too: onto array rows that may hold another layer.
    Mutant("seq_pad_code_past_run", "stage L", "hw/sequencer.py", "Mux(lane_pad_q[j], d.pad_code, 0)", "d.pad_code"),
    # A residual add reduces its window by max (as max pooling) instead of summing it.
    Mutant("seq_add_as_max", "stage R", "hw/sequencer.py", "win_sum = (d.opcode == Op.AVGPOOL) | (d.opcode == Op.ADD)",
           "win_sum = d.opcode == Op.AVGPOOL"),
    # Stage R's lanes take the read data as they are: a depthwise window element in the padding
    # reads whatever the SRAM holds instead of the pad code.
    Mutant("seq_dw_pad_code", "stage R", "hw/sequencer.py", "pool_win.x.eq(lane_x)", "pool_win.x.eq(self.act_rdata)"),
    # The weights of the next word: every lane multiplies by its neighbour channel's weight.
    Mutant("seq_dw_weight_addr", "stage R", "hw/sequencer.py", "self.dw_raddr.eq(walk.read.waddr)",
           "self.dw_raddr.eq(walk.read.waddr + 1)"),
    # ---------------------------------------------------------------- stage L/R: im2col walker (hw/im2col.py)
    Mutant("im2col_stride", "stage L", "hw/im2col.py", "ix0.eq(ix0 + d.stride)", "ix0.eq(ix0 + 1)"),
    Mutant("im2col_pad_edge", "stage L", "hw/im2col.py", "iy_in = (iy >= 0) & (iy < d.in_h)",
           "iy_in = (iy >= 0) & (iy <= d.in_h)"),
    Mutant("im2col_row_end", "stage L", "hw/im2col.py", "(seg_a + j < row_lo + row_len)", "(seg_a + j <= row_lo + row_len)"),
    Mutant("im2col_tile_rows", "stage L", "hw/im2col.py", "tile_left.eq(c.rows - rl)", "tile_left.eq(c.rows - rl + 1)"),
    Mutant("im2col_pad_w_rows", "stage L", "hw/im2col.py", "iy0.eq(-d.pad_h)", "iy0.eq(-d.pad_w)"),
    Mutant("im2col_pool_channel", "stage R", "hw/im2col.py", "pool_a.eq(row_lo + (ix0 + kx) * d.in_c + self.c0)",
           "pool_a.eq(row_lo + (ix0 + kx) * d.in_c)"),
    # The pooling walk's padding: the column just right of the map taken as inside it.
    Mutant("im2col_pool_pad_edge", "stage R", "hw/im2col.py", "elem_in = iy_in & (ix >= 0) & (ix < d.in_w)",
           "elem_in = iy_in & (ix >= 0) & (ix <= d.in_w)"),
    # Depthwise weights: a window element's weights one word too far on, or the next group's
    # weights counted on from the last element instead of the window's first.
    Mutant("im2col_dw_weight_step", "stage R", "hw/im2col.py", "w_off.eq(w_off + d.in_c)", "w_off.eq(w_off + d.in_c + 1)"),
    Mutant("im2col_dw_weight_restart", "stage R", "hw/im2col.py", "[ky.eq(0), w_off.eq(0), loaded.eq(1)]",
           "[ky.eq(0), loaded.eq(1)]"),
    # ---------------------------------------------------------------- stage A: array control (hw/array_control.py)
    Mutant("arr_pwm_window", "stage A", "hw/array_control.py", "with m.If(pwm == (1 << d.in_bits) - 1):",
           "with m.If(pwm == (1 << d.in_bits) - 2):"),
    Mutant("arr_last_slot", "stage A", "hw/array_control.py", "tcol_end.eq(mvm.tcol0 + d.out_c - 1)",
           "tcol_end.eq(mvm.tcol0 + d.out_c - 2)"),
    Mutant("arr_code_half", "stage A", "hw/array_control.py", "cb_w.addr.eq(cq_par * n_slots + cq_slot)",
           "cb_w.addr.eq(cq_slot)"),
    # ---------------------------------------------------------------- stage P: tile accumulator (hw/tile_accumulator.py)
    Mutant("tile_first_sum", "stage P", "hw/tile_accumulator.py",
           "Mux(pq_first, 0, acc_r.data[q]) + self.code_rd.data[pq_lane0 + q]", "acc_r.data[q] + self.code_rd.data[pq_lane0 + q]"),
    Mutant("tile_last_tile", "stage P", "hw/tile_accumulator.py", "pq_last.eq(mvm.tile == n_tiles - 1)",
           "pq_last.eq(mvm.tile == n_tiles)"),
    Mutant("tile_lane_mask", "stage P", "hw/tile_accumulator.py", "lanes_ok[q].eq(pc + q < d.out_c)",
           "lanes_ok[q].eq(pc + q <= d.out_c)"),
    # ---------------------------------------------------------------- stages R/S: pooling (hw/pool.py, pool_issue.py)
    Mutant("pool_max_compare", "pooling", "hw/pool.py", "Mux(self.in_x > acc, self.in_x, acc)",
           "Mux(self.in_x < acc, self.in_x, acc)"),
    Mutant("pool_first", "pooling", "hw/pool.py", "value.eq(Mux(self.in_first, term, reduced))", "value.eq(reduced)"),
    # Depthwise: the window summed unweighted, or its first element unweighted.
    Mutant("pool_mac_unweighted", "pooling", "hw/pool.py", "Mux(self.mac, self.in_x * self.in_w, self.in_x)",
           "Mux(self.mac, self.in_x, self.in_x)"),
    Mutant("pool_mac_first", "pooling", "hw/pool.py", "value.eq(Mux(self.in_first, term, reduced))",
           "value.eq(Mux(self.in_first, self.in_x, reduced))"),
    # The accumulator one bit short of pool_acc_bits: depthwise sums near the limit wrap.
    Mutant("pool_acc_width", "pooling", "hw/pool.py", "return max(cfg.pool_sum_bits + 1, cfg.dw_sum_bits)",
           "return max(cfg.pool_sum_bits + 1, cfg.dw_sum_bits - 1)"),
    # Folded pooling reads (hw/pool_bank.py, im2col.py, descriptor.py): the fold maxes a sum's lanes,
    # folds one level too few, or the walker's folding run starts one code late (and its weights
    # follow the elements instead of the run).
    Mutant("pool_fold_op", "pooling", "hw/pool_bank.py", "Mux(self.sum | self.mac, a + b, Mux(b > a, b, a))",
           "Mux(self.mac, a + b, Mux(b > a, b, a))"),
    Mutant("pool_fold_levels", "pooling", "hw/pool_bank.py", "Mux(self.fold >= k,", "Mux(self.fold > k,"),
    Mutant("fold_decode", "pooling", "hw/descriptor.py", "(desc.in_c == cfg.load_lanes >> k)",
           "(desc.in_c == cfg.load_lanes >> (k - 1))"),
    Mutant("im2col_fold_weights", "stage R", "hw/im2col.py", "m.d.sync += w_off.eq(w_off + n)",
           "m.d.sync += w_off.eq(w_off + d.in_c)"),
    # ---------------------------------------------------------------- depthwise weight memory (hw/top.py)
    # The group's weights rotated one lane: lane j gets channel c0 + j + 1's weight.
    Mutant("top_dww_lane", "dww", "hw/top.py", 'rotate_lanes(m, "dww", seq_r, ra_lane_q)',
           'rotate_lanes(m, "dww", seq_r[1:] + seq_r[:1], ra_lane_q)'),
    # Host reads of the DWW window not sign-extended.
    Mutant("top_dww_read_sign", "dww", "hw/top.py", "weight = Signal(signed(c.dw_weight_bits))",
           "weight = Signal(c.dw_weight_bits)"),
    Mutant("pool_issue_mask", "pooling", "hw/pool_issue.py", "issue.valid[q].eq(lane + q < grp.n)",
           "issue.valid[q].eq(lane + q <= grp.n)"),
    Mutant("pool_issue_addr", "pooling", "hw/pool_issue.py", "issue.addr.eq(grp.out_base + grp.c0 + lane)",
           "issue.addr.eq(grp.out_base + lane)"),
    # ---------------------------------------------------------------- descriptor check (hw/desc_check.py)
    Mutant("check_pad_w_rows", "desc check", "hw/desc_check.py", "~dim_ok(d.out_h, d.in_h, d.k_h, d.pad_h)",
           "~dim_ok(d.out_h, d.in_h, d.k_h, d.pad_w)"),
    Mutant("check_add_rejected", "desc check", "hw/desc_check.py", "~(is_mvm | is_max | is_avg | is_add | is_dw)",
           "~(is_mvm | is_max | is_avg | is_dw)"),
    Mutant("check_dw_rejected", "desc check", "hw/desc_check.py", "~(is_mvm | is_max | is_avg | is_add | is_dw)",
           "~(is_mvm | is_max | is_avg | is_add)"),
    Mutant("check_pad_code_bound", "desc check", "hw/desc_check.py", "d.pad_code > max_code", "d.pad_code > max_code + 1"),
    Mutant("check_overlap", "desc check", "hw/desc_check.py", "(out_end > d.in_base) &", "(out_end > d.in_base + 1) &"),
    Mutant("check_out_range", "desc check", "hw/desc_check.py", "out_end > Mux(d.to_out, c.out_depth, c.act_depth)",
           "out_end > Mux(d.to_out, c.out_depth, c.act_depth) + 1"),
    # (`>=` -> `>` here is equivalent: k_h*k_w*(2**bits - 1) is never a power of two for bits >= 2.)
    Mutant("check_pool_sum", "desc check", "hw/desc_check.py", "d.k_h * d.k_w * max_code >= (1 << c.pool_sum_bits)",
           "d.k_h * max_code >= (1 << c.pool_sum_bits)"),
    # The pooling rules applied to depthwise layers too (padding refused; a wide window POOL_SUM).
    Mutant("check_dw_as_pool", "desc check", "hw/desc_check.py",
           "(ErrorCode.BAD_POOL, is_pool & ((d.k_rows != 0)", "(ErrorCode.BAD_POOL, ~is_mvm & ((d.k_rows != 0)"),
    Mutant("check_dw_pool_sum", "desc check", "hw/desc_check.py", "(ErrorCode.POOL_SUM, is_pool & (",
           "(ErrorCode.POOL_SUM, ~is_mvm & ("),
    Mutant("check_dw_to_out", "desc check", "hw/desc_check.py", "(d.out_c != d.in_c) |\n                                            d.to_out)),",
           "(d.out_c != d.in_c))),"),
    Mutant("check_dw_range", "desc check", "hw/desc_check.py", "d.w_base + d.k_h * d.k_w * d.in_c > c.dw_depth",
           "d.w_base + d.k_h * d.k_w * d.in_c > c.dw_depth + 1"),
    Mutant("check_dw_sum", "desc check", "hw/desc_check.py", "<< (c.dw_weight_bits - 1)) >=",
           "<< (c.dw_weight_bits - 2)) >="),
    # ---------------------------------------------------------------- post-processing (hw/postproc.py)
    Mutant("pp_round_half", "postproc", "hw/postproc.py", "rnd.eq((1 << total_shift) >> 1)",
           "rnd.eq(((1 << total_shift) >> 1) - 1)"),
    Mutant("pp_relu_lo", "postproc", "hw/postproc.py", "lo.eq(Mux(self.to_out & ~self.relu, -out_max - 1, 0))",
           "lo.eq(Mux(self.to_out & ~self.relu, -out_max, 0))"),
    Mutant("pp_act_max", "postproc", "hw/postproc.py", "act_max.eq((1 << self.out_bits) - 1)",
           "act_max.eq((1 << self.out_bits) - 2)"),
    Mutant("pp_bias_shift", "postproc", "hw/postproc.py", "(self.in_bias << f)", "(self.in_bias << (f - 1))"),
    Mutant("pp_clamp_hi", "postproc", "hw/postproc.py", "Mux(y > hi, hi,", "Mux(y > hi + 1, hi,"),
    # ---------------------------------------------------------------- crossbar, Verilog twin (hw/pcm_array_model.v)
    Mutant("xbar_v_adc_clamp", "crossbar (v)", "hw/pcm_array_model.v", "if (q > ADC_MAX) q = ADC_MAX;",
           "if (q > ADC_MAX - 1) q = ADC_MAX - 1;"),
    Mutant("xbar_v_adc_clamp_neg", "crossbar (v)", "hw/pcm_array_model.v", "else if (q < -ADC_MAX) q = -ADC_MAX;",
           "else if (q < -ADC_MAX + 1) q = -ADC_MAX + 1;"),
    Mutant("xbar_v_first_load", "crossbar (v)", "hw/pcm_array_model.v", "acc1[j] <= load_first_q ? s : old + s;",
           "acc1[j] <= old + s;"),
    Mutant("xbar_v_noise_mean", "crossbar (v)", "hw/pcm_array_model.v", "- NOISE_MEAN;", "- NOISE_MEAN + 1;"),
    Mutant("xbar_v_rounding", "crossbar (v)", "hw/pcm_array_model.v", "<<< (GAIN_SHIFT - 1));", "<<< (GAIN_SHIFT - 2));"),
    # ---------------------------------------------------------------- crossbar, Amaranth twin (hw/adc.py, read_noise.py, pcm_array.py)
    Mutant("xbar_a_adc_clamp", "crossbar (a)", "hw/adc.py", "Mux(q > t.adc_max, t.adc_max,", "Mux(q > t.adc_max - 1, t.adc_max - 1,"),
    Mutant("xbar_a_adc_round", "crossbar (a)", "hw/adc.py", "self.noise * t.noise_mult + t.rounding)",
           "self.noise * t.noise_mult)"),
    Mutant("xbar_a_noise_mean", "crossbar (a)", "hw/read_noise.py", "h[24:32] - self.cfg.NOISE_MEAN_RAW)",
           "h[24:32] - self.cfg.NOISE_MEAN_RAW + 1)"),
    Mutant("xbar_a_first_load", "crossbar (a)", "hw/pcm_array.py", "m.d.sync += acc[b][j].eq(rows_sum)",
           "m.d.sync += acc[b][j].eq(acc[b][j] + rows_sum)"),
    # ---------------------------------------------------------------- golden model (model/bittrue.py, aoncim/adc.py)
    Mutant("gold_pp_round", "golden", "model/bittrue.py", "y = (acc + ((1 << (d.shift + f - 1)) if d.shift + f else 0)) >> (d.shift + f)",
           "y = (acc + ((1 << (d.shift + f - 1)) if d.shift + f else 0) - 1) >> (d.shift + f)"),
    Mutant("gold_out_lo", "golden", "model/bittrue.py", "lo, hi = (0 if d.relu else -(1 << (self.cfg.out_bits - 1))),",
           "lo, hi = (0 if d.relu else 1 - (1 << (self.cfg.out_bits - 1))),"),
    Mutant("gold_im2col_order", "golden", "model/bittrue.py", "p = p[:, : d.out_h, : d.out_w].permute(0, 1, 2, 4, 5, 3)",
           "p = p[:, : d.out_h, : d.out_w].permute(0, 1, 2, 5, 4, 3)"),
    Mutant("gold_tile_noise", "golden", "model/bittrue.py", "mvm = mvm0 + t + len(tiles) * np.arange(",
           "mvm = mvm0 + len(tiles) * np.arange("),
    # Depthwise weights read channel-major (c*k_h*k_w + e) instead of channel fastest.
    Mutant("gold_dw_layout", "golden", "model/bittrue.py", "w.reshape(d.k_h * d.k_w, d.in_c).T.copy()",
           "w.reshape(d.in_c, d.k_h * d.k_w).copy()"),
    # The pooling walk's padding read as 0 instead of the pad code.
    Mutant("gold_dw_pad_zero", "golden", "model/bittrue.py",
           "x_nhwc = torch.nn.functional.pad(x_nhwc, (0, 0, d.pad_w, d.pad_w, d.pad_h, d.pad_h), value=d.pad_code)",
           "x_nhwc = torch.nn.functional.pad(x_nhwc, (0, 0, d.pad_w, d.pad_w, d.pad_h, d.pad_h), value=0)"),
    Mutant("gold_adc_clamp", "golden", "aoncim/adc.py", "return _clamp((v + self.rounding) >> self.gain_shift, -self.adc_max, self.adc_max)",
           "return _clamp((v + self.rounding) >> self.gain_shift, -self.adc_max, self.adc_max - 1)"),
    Mutant("gold_noise_mean", "golden", "aoncim/config.py", "NOISE_MEAN_RAW = 510", "NOISE_MEAN_RAW = 511"),
]
