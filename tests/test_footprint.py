"""model/footprint.py sizes a network from the compiler's own lowering (firmware.compiler.lower_network):
for random nets, with every module the compiler folds or skips, the footprint's layers are the
compiled program's layers, and a network the lowering rejects fails the footprint with the
compiler's one-line message."""
import numpy as np
import pytest
import torch
from torch import nn

from aoncim.config import AonCimConfig
from aoncim.firmware.compiler import CompileError, compile_network
from aoncim.model.footprint import FootprintError, analog_footprint
from aoncim.program import Op

CFG = AonCimConfig(rows=256, cols=256, max_layers=16, act_depth=4096, param_depth=1024, out_depth=256)


def _random_net(rng: np.random.Generator) -> tuple[nn.Sequential, tuple[int, int, int]]:
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(6, 13)), int(rng.integers(6, 13))
    mods: list[nn.Module] = []
    ch, hh, ww = c, h, w

    def extras(two_d: bool):
        if rng.random() < 0.5:
            mods.append(nn.BatchNorm2d(ch) if two_d else nn.BatchNorm1d(ch))
        if rng.random() < 0.7:
            mods.append(nn.ReLU())
        for extra in (nn.Dropout(0.1), nn.Identity()):
            if rng.random() < 0.3:
                mods.append(extra)

    for _ in range(int(rng.integers(1, 4))):
        o, k = int(rng.integers(2, 9)), int(rng.integers(1, 4))
        s, ph, pw = int(rng.integers(1, 3)), int(rng.integers(0, 2)), int(rng.integers(0, 2))  # pad_h, pad_w
        if (hh + 2 * ph - k) // s + 1 < 1 or (ww + 2 * pw - k) // s + 1 < 1:
            break
        mods.append(nn.Conv2d(ch, o, k, stride=s, padding=(ph, pw)))
        ch, hh, ww = o, (hh + 2 * ph - k) // s + 1, (ww + 2 * pw - k) // s + 1
        extras(True)
        if min(hh, ww) >= 2 and rng.random() < 0.6:
            k = int(rng.integers(2, min(hh, ww, 3) + 1))
            s = int(rng.integers(1, k + 1))  # kernel != stride as often as not
            mods.append((nn.MaxPool2d if rng.random() < 0.5 else nn.AvgPool2d)(k, stride=s))
            hh, ww = (hh - k) // s + 1, (ww - k) // s + 1
    if rng.random() < 0.3:
        mods.append(nn.AdaptiveAvgPool2d(1))
        hh = ww = 1
    mods.append(nn.Flatten())
    if rng.random() < 0.5:
        o = int(rng.integers(4, 17))
        mods.append(nn.Linear(ch * hh * ww, o))
        ch, hh, ww = o, 1, 1
        extras(False)
    mods.append(nn.Linear(ch * hh * ww, int(rng.integers(2, 6))))
    return nn.Sequential(*mods), (c, h, w)


@pytest.mark.parametrize("seed", range(12))
def test_footprint_layers_are_the_compiled_layers(seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net, shape = _random_net(rng)
    net.eval()
    for m in net.modules():  # batch-norm statistics away from the identity
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    fp = analog_footprint(net, shape, CFG)
    prog = compile_network(net, CFG, torch.rand(4, *shape))
    assert len(fp.layers) == len(prog.layers), net
    for i, (L, d) in enumerate(zip(fp.layers, prog.layers)):
        assert L.name == prog.layer_name(i)
        assert L.op is d.op
        assert L.in_shape == (d.in_h, d.in_w, d.in_c) and L.out_shape == (d.out_h, d.out_w, d.out_c), L.name
        assert (L.kernel, L.stride, L.pad) == ((d.k_h, d.k_w), d.stride, (d.pad_h, d.pad_w)), L.name
        assert (L.rows, L.cols) == ((d.k_rows, d.out_c) if d.is_mvm else (0, 0)), L.name
        assert L.mvms == d.mvms(CFG.rows)
        if d.is_mvm:
            assert L.place == (d.row0, d.col0) and L.tiles == d.tiles(CFG.rows)
    assert fp.pp_channels == sum(d.out_c for d in prog.layers if d.op.uses_params)
    assert fp.mvms == prog.mvms


REJECTED = [
    ("dilation", nn.Sequential(nn.Conv2d(4, 4, 3, dilation=2), nn.Flatten(), nn.Linear(4, 2)), (4, 5, 5)),
    ("unsupported", nn.Sequential(nn.Conv2d(1, 2, 1), nn.Sigmoid(), nn.Flatten(), nn.Linear(2, 2)), (1, 1, 1)),
    ("strides", nn.Sequential(nn.Conv2d(1, 2, 3, stride=(1, 2)), nn.Flatten(), nn.Linear(2, 2)), (1, 3, 5)),
    ("circular", nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), nn.Flatten(),
                               nn.Linear(18, 2)), (1, 3, 3)),
    ("pool padding", nn.Sequential(nn.Conv2d(1, 2, 1), nn.MaxPool2d(2, padding=1), nn.Flatten(),
                                   nn.Linear(18, 2)), (1, 4, 4)),
    ("bn after relu", nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.BatchNorm2d(2), nn.Flatten(),
                                    nn.Linear(2, 2)), (1, 1, 1)),
    ("bn channels", nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(2, 2)), (1, 1, 1)),
    ("linear inputs", nn.Sequential(nn.Conv2d(1, 2, 1), nn.Flatten(), nn.Linear(3, 2)), (1, 1, 1)),
    ("conv channels", nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten(), nn.Linear(2, 2)), (1, 1, 1)),
    ("window", nn.Sequential(nn.Conv2d(1, 2, 5), nn.Flatten(), nn.Linear(2, 2)), (1, 3, 3)),
    ("ends with a pool", nn.Sequential(nn.Conv2d(1, 2, 1), nn.AdaptiveAvgPool2d(1)), (1, 2, 2)),
    ("no array layer", nn.Sequential(nn.MaxPool2d(2)), (1, 2, 2)),
    ("global pooling only", nn.Sequential(nn.Conv2d(1, 2, 1), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                          nn.Linear(8, 2)), (1, 2, 2)),
]


@pytest.mark.parametrize("what, net, shape", REJECTED, ids=[r[0] for r in REJECTED])
def test_footprint_rejects_what_the_compiler_rejects_with_its_message(what, net, shape):
    with pytest.raises(CompileError) as compiled:
        compile_network(net.eval(), CFG, torch.rand(2, *shape))
    with pytest.raises(FootprintError) as sized:
        analog_footprint(net, shape, CFG)
    msg = str(compiled.value)
    assert "\n" not in msg and str(sized.value) == msg


def test_ops_are_one_vocabulary():
    """The descriptor packs Op's value; the enum is shaped like the opcode field for the RTL."""
    from amaranth.hdl import Shape

    from aoncim.program import DESCRIPTOR_FIELDS

    assert [(o.name, o.value) for o in Op] == [("MVM", 1), ("MAXPOOL", 2), ("AVGPOOL", 3), ("ADD", 4), ("DWCONV", 5)]
    assert Shape.cast(Op) == Shape(dict(DESCRIPTOR_FIELDS)["opcode"])
    assert [o for o in Op if o.uses_array] == [Op.MVM]
    assert [o for o in Op if o.is_pool] == [Op.MAXPOOL, Op.AVGPOOL, Op.ADD, Op.DWCONV]
    assert [o for o in Op if o.pads] == [Op.MVM, Op.DWCONV]
    assert [o for o in Op if o.uses_dww] == [Op.DWCONV]
    assert [o for o in Op if o.uses_params] == [Op.MVM, Op.AVGPOOL, Op.ADD, Op.DWCONV]
    assert [o for o in Op if o.keeps_bits] == [Op.MAXPOOL]
    assert Op.known() == {1: "mvm", 2: "maxpool", 3: "avgpool", 4: "add", 5: "dwconv"}
    assert Op.DWCONV.kinds == ("depthwise", "depthwise")
