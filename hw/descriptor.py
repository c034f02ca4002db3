"""The layer descriptor as the RTL sees it: `aoncim.program.DESCRIPTOR_FIELDS` packed into one
DESC_BITS-wide program-memory row (the layout `LayerDescriptor.pack` writes)."""
from amaranth.lib import data

from aoncim.program import DESC_BITS, DESCRIPTOR_FIELDS


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
