"""The layer descriptor as the RTL sees it: `aoncim.program.DESCRIPTOR_FIELDS` packed into one
DESC_BITS-wide program-memory row (the layout `LayerDescriptor.pack` writes)."""
from amaranth import Const, Mux, Value
from amaranth.lib import data

from aoncim.config import AonCimConfig
from aoncim.program import DESC_BITS, DESCRIPTOR_FIELDS, Op


def descriptor_layout() -> data.StructLayout:
    fields = dict(DESCRIPTOR_FIELDS)
    fields["_pad"] = DESC_BITS - sum(fields.values())
    return data.StructLayout(fields)


def dim_bits() -> int:
    """Width of a size or channel count of the descriptor (all of them are this wide)."""
    fields = dict(DESCRIPTOR_FIELDS)
    bits = fields["in_c"]
    assert all(fields[f] == bits for f in ("in_h", "in_w", "k_h", "k_w", "out_h", "out_w", "out_c"))
    return bits


def pool_fold_levels(cfg: AonCimConfig, desc) -> Value:
    """Decode of a layer's pooling fold (`AonCimConfig.pool_folds`): log2(load_lanes / in_c) when a
    pooling-type layer of `in_c` channels reads several window elements a read and folds its
    lanes, else 0. One decode for the walker (runs instead of elements) and the pooling bank (how
    many levels it folds)."""
    levels = Const(0, range(max(2, cfg.pool_fold_levels + 1)))
    if cfg.pool_fold_levels:
        for k in range(1, cfg.pool_fold_levels + 1):
            levels = Mux((desc.in_c == cfg.load_lanes >> k) & (desc.opcode != Op.MVM), k, levels)
    return levels
