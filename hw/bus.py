"""The chip-internal register bus between the AXI4-Lite front end and the register file/windows.

Word-addressed, one access per cycle, fixed read latency: `r_data` is valid exactly one cycle after
the cycle in which `r_stb` was high (memories behind it are synchronous-read).
"""
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class RegisterBusSignature(wiring.Signature):
    """Initiator's view (the AXI adapter drives it)."""

    def __init__(self, addr_bits: int, data_bits: int = 32):
        self.addr_bits = addr_bits
        self.data_bits = data_bits
        super().__init__({
            "addr": Out(addr_bits),
            "w_stb": Out(1),
            "w_data": Out(data_bits),
            "w_strb": Out(data_bits // 8),
            "r_stb": Out(1),
            "r_data": In(data_bits),
        })
