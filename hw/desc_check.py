"""The CHECK state's descriptor validation, split out of `LayerSequencer` so that it is specified
and tested (tests/test_desc_check_stage.py) on its own."""
import operator
from functools import reduce

from amaranth import Module, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from aoncim.config import AonCimConfig
from aoncim.program import Op
from aoncim.regmap import ErrorCode

from .descriptor import descriptor_layout


class DescriptorCheck(wiring.Component):
    """Twin of `LayerDescriptor.check` for one latched descriptor, as an `ErrorCode`.

    Combinational: `error` is high when `desc` cannot run on the configured chip, and `code` is
    then the lowest failing `ErrorCode` (docs/architecture.md, "Host address map"); `code` is
    `ErrorCode.NONE` otherwise. The codes of the run as a whole (NO_LAYERS, TOO_MANY_LAYERS) are
    the sequencer's, not this block's.
    """

    def __init__(self, cfg: AonCimConfig):
        self.cfg = cfg
        super().__init__({
            "desc": In(descriptor_layout()),
            "error": Out(1),
            "code": Out(max(ErrorCode).bit_length()),
        })

    def elaborate(self, platform):
        c = self.cfg
        m = Module()
        d = self.desc
        is_mvm, is_max, is_avg, is_add, is_dw = (d.opcode == op for op in (Op.MVM, Op.MAXPOOL, Op.AVGPOOL, Op.ADD,
                                                                           Op.DWCONV))
        is_pool = is_max | is_avg | is_add   # the pooling ops proper (no padding, no weights)
        # Row tiles (contract step 12): ceil(k_rows / rows), a shift because rows is a power of two.
        n_tiles = (d.k_rows + (c.rows - 1)) >> c.row_bits
        bits_ok = [reduce(operator.or_, [b == v for v in c.act_bits_supported]) for b in (d.in_bits, d.out_bits)]

        def dim_ok(out, inp, k, pad):
            # out == (inp + 2*pad - k) // stride + 1, without a divider: span >= k and
            # (out-1)*stride <= span - k < out*stride.
            span = inp + 2 * pad
            return (span >= k) & (out * d.stride + k <= span + d.stride) & (out * d.stride + k > span)

        in_end = d.in_base + d.in_h * d.in_w * d.in_c
        out_end = d.out_base + d.out_h * d.out_w * d.out_c
        max_code = (1 << d.in_bits) - 1
        checks = [
            (ErrorCode.BAD_OPCODE, ~(is_mvm | is_max | is_avg | is_add | is_dw)),
            (ErrorCode.BAD_BITS, ~(bits_ok[0] & bits_ok[1])),
            (ErrorCode.ZERO_SIZE, (d.stride == 0) | (d.k_h == 0) | (d.k_w == 0) | (d.in_h == 0) | (d.in_w == 0) |
             (d.in_c == 0) | (d.out_h == 0) | (d.out_w == 0) | (d.out_c == 0)),
            (ErrorCode.BAD_GEOMETRY, ~dim_ok(d.out_h, d.in_h, d.k_h, d.pad_h) |
             ~dim_ok(d.out_w, d.in_w, d.k_w, d.pad_w) | (is_mvm & (d.k_rows != d.k_h * d.k_w * d.in_c))),
            (ErrorCode.ARRAY_ROWS, is_mvm & (d.row0 + Mux(d.k_rows > c.rows, c.rows, d.k_rows) > c.rows)),
            (ErrorCode.ARRAY_COLS, is_mvm & (d.col0 + n_tiles * d.out_c > c.cols)),
            (ErrorCode.BAD_POOL, is_pool & ((d.k_rows != 0) | (d.row0 != 0) | (d.col0 != 0) | (d.out_c != d.in_c) |
                                            (d.pad_h != 0) | (d.pad_w != 0) |
                                            (is_max & ((d.out_bits != d.in_bits) | d.to_out)) |
                                            # A residual add's operands: a 2 x positions x C view, 2x1
                                            # window, stride 1 (out_h == 1 then follows from BAD_GEOMETRY).
                                            (is_add & ((d.in_h != 2) | (d.k_h != 2) | (d.k_w != 1) |
                                                       (d.stride != 1))))),
            (ErrorCode.POOL_SUM, is_pool & (d.k_h * d.k_w * max_code >= (1 << c.pool_sum_bits))),
            (ErrorCode.PARAM_RANGE, d.param_base + d.out_c > c.param_depth),
            (ErrorCode.BAD_SHIFT, d.shift > c.pp_shift_max),
            (ErrorCode.IN_RANGE, in_end > c.act_depth),
            (ErrorCode.OUT_RANGE, out_end > Mux(d.to_out, c.out_depth, c.act_depth)),
            (ErrorCode.ACT_OVERLAP, ~d.to_out & (d.in_bank == d.out_bank) & (out_end > d.in_base) &
             (in_end > d.out_base)),
            (ErrorCode.BAD_PAD_CODE, d.pad_code > max_code),
            (ErrorCode.BAD_DWCONV, is_dw & ((d.k_rows != 0) | (d.row0 != 0) | (d.col0 != 0) | (d.out_c != d.in_c) |
                                            d.to_out)),
            (ErrorCode.DW_RANGE, is_dw & (d.w_base + d.k_h * d.k_w * d.in_c > c.dw_depth)),
            # |sum| <= k_h*k_w*max_code * 2**(dw_weight_bits-1) (codes times the most negative weight)
            (ErrorCode.DW_SUM, is_dw & ((d.k_h * d.k_w * max_code << (c.dw_weight_bits - 1)) >=
                                        (1 << (c.dw_sum_bits - 1)))),
        ]
        # Reported in ErrorCode order, so the lowest failing code wins.
        assert [code for code, _ in checks] == sorted(code for code, _ in checks)
        for i, (code, bad) in enumerate(checks):
            with (m.If if i == 0 else m.Elif)(bad):
                m.d.comb += [self.error.eq(1), self.code.eq(code)]
        return m
