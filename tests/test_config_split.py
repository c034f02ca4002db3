"""Chip fields vs device fields of AonCimConfig (aoncim/config.py, docs/architecture.md "The one
config"): a PCM device parameter changes neither `config_hash`, nor the Verilog cache key, nor the
generated Verilog (its CONFIG_HASH register), nor an image, and the driver still accepts an image
compiled before the change; a chip field changes all of them."""
import copy
import dataclasses

import pytest
import torch
from torch import nn

from aoncim.config import DEVICE_FIELDS, AonCimConfig
from aoncim.firmware.compiler import compile_network
from aoncim.firmware.driver import AonCimDriver, ChipError
from aoncim.firmware.image import ImageError, read_image, write_image
from aoncim.hw.verilog import design_key, generate_verilog
from aoncim.regmap import CHIP_ID, AddressMap, Reg
from aoncim.sim.recording_bus import run_sync
from aoncim.sim.jobs import SMALL_CFG

# The config of tests/test_core_amaranth.py: small enough to elaborate in seconds.
SMALL = SMALL_CFG

# Another valid value for every field of SMALL; a new config field must be added here (and so be
# classified: chip unless listed in DEVICE_FIELDS).
DEVICE_CHANGES = {"g_max_us": 50.0, "drift_t0_s": 60.0, "t_read_s": 1e-6}
CHIP_CHANGES = {
    "rows": 256, "cols": 128, "dac_bits": 10, "act_bits_supported": (8,), "gcode_bits": 7, "adc_bits": 10,
    "n_adcs": 16, "adc_gain_mult": 3000, "adc_gain_shift": 23, "load_lanes": 8, "pp_lanes": 2,
    "read_noise_lsb": 0.25, "pp_scale_bits": 12, "pp_bias_bits": 24, "pp_shift_max": 20, "out_bits": 12,
    "alpha_bits": 14, "alpha_frac_bits": 10, "pool_sum_bits": 14, "act_depth": 512, "out_depth": 128,
    "max_layers": 8, "param_depth": 256, "dw_weight_bits": 6, "dw_sum_bits": 18, "dw_depth": 512,
    "pool_fold_min_channels": 16,
    "bus_data_bits": 64,  # the only valid value is 32: set past the validation, to see it hashed
}


def changed(cfg: AonCimConfig, name: str, value) -> AonCimConfig:
    if name == "bus_data_bits":
        c = copy.copy(cfg)
        object.__setattr__(c, name, value)
        return c
    return dataclasses.replace(cfg, **{name: value})


def test_every_field_is_classified():
    fields = [f.name for f in dataclasses.fields(AonCimConfig)]
    assert set(DEVICE_CHANGES) == set(DEVICE_FIELDS)
    assert sorted(CHIP_CHANGES) == sorted(set(fields) - set(DEVICE_FIELDS))
    assert list(SMALL.chip_dict()) + list(SMALL.device_dict()) == [f for f in fields if f not in DEVICE_FIELDS] + \
        [f for f in fields if f in DEVICE_FIELDS]
    assert {**SMALL.chip_dict(), **SMALL.device_dict()} == SMALL.to_dict()


class IdentityBus:
    """Answers the driver's identity reads like a chip whose CONFIG_HASH register resets to `chash`;
    takes every write."""

    def __init__(self, cfg: AonCimConfig, chash: int):
        self.amap, self.chash, self.writes = AddressMap(cfg), chash, 0

    async def read_words(self, addr: int, n: int) -> list[int]:
        regs = {self.amap.reg(Reg.ID): CHIP_ID, self.amap.reg(Reg.CONFIG_HASH): self.chash}
        return [regs.get(addr + 4 * i, 0) for i in range(n)]

    async def write_words(self, addr: int, words: list[int]) -> None:
        self.writes += len(words)

    async def wait_irq(self) -> None:
        pass


@pytest.fixture(scope="module")
def net_and_calib():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    return net, torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def base(net_and_calib):
    """(Verilog, image) of SMALL."""
    net, calib = net_and_calib
    return generate_verilog(SMALL), write_image(compile_network(net, SMALL, calib), SMALL)


@pytest.mark.parametrize("name", sorted(DEVICE_CHANGES))
def test_device_field_keeps_chip_identity(name, base, net_and_calib):
    verilog, blob = base
    dev = changed(SMALL, name, DEVICE_CHANGES[name])
    assert dev != SMALL and dev.device_hash != SMALL.device_hash
    assert dev.config_hash == SMALL.config_hash and dev.chip_dict() == SMALL.chip_dict()
    assert design_key(dev) == design_key(SMALL)
    # The image compiled before the change is accepted, for the changed config, by reader and
    # driver of a chip generated before the change; compiling again gives the same bytes.
    prog, cfg = read_image(blob, dev)
    assert cfg == dev
    assert f"32'd{SMALL.config_hash}" in verilog  # the CONFIG_HASH register's reset value
    driver = AonCimDriver(IdentityBus(SMALL, SMALL.config_hash), dev)
    run_sync(driver.check_identity())
    run_sync(driver.load_program(prog))
    assert driver.bus.writes > 0
    net, calib = net_and_calib
    assert write_image(compile_network(net, dev, calib), dev) == blob


def test_device_fields_keep_the_verilog(base):
    dev = SMALL
    for name, value in DEVICE_CHANGES.items():
        dev = changed(dev, name, value)
    assert generate_verilog(dev) == base[0]


@pytest.mark.parametrize("name", sorted(CHIP_CHANGES))
def test_chip_field_changes_chip_identity(name, base):
    chip = changed(SMALL, name, CHIP_CHANGES[name])
    assert chip.config_hash != SMALL.config_hash and chip.device_hash == SMALL.device_hash
    assert design_key(chip) != design_key(SMALL)
    driver = AonCimDriver(IdentityBus(SMALL, SMALL.config_hash), chip)
    with pytest.raises(ChipError, match="config hash"):
        run_sync(driver.check_identity())
    if name != "bus_data_bits":
        with pytest.raises(ImageError, match="recompile for this config"):
            read_image(base[1], chip)


def test_chip_field_changes_the_verilog_config_hash(base):
    chip = changed(SMALL, "max_layers", 8)
    v = generate_verilog(chip)
    assert f"32'd{chip.config_hash}" in v and f"32'd{SMALL.config_hash}" not in v and f"32'd{SMALL.config_hash}" in base[0]


def test_image_carries_only_chip_fields(base):
    _, cfg = read_image(base[1])
    assert cfg.chip_dict() == SMALL.chip_dict() and cfg.device_dict() == AonCimConfig().device_dict()
    assert b"g_max_us" not in base[1] and b"rows" in base[1]
