"""The four MLPerf Tiny inference benchmark models (v1.0 reference submissions) in PyTorch.

Random weights, batch-norm statistics calibrated on synthetic inputs; accuracy is not the point,
bit-exactness and PPA are. These are workloads for the compiler, the co-simulation and the
performance model: the published layer structure, shapes, parameter and MAC counts of the MLPerf
Tiny reference models, with weights that keep every hidden activation in a sane range.

The architectures follow the Keras reference code of mlcommons/tiny (benchmark/training/*, the
models behind the v1.0 reference submissions) layer for layer, every conv and dense layer keeping
the bias the Keras layers have by default (use_bias=True). So the PyTorch parameter count
(weights, biases, batch-norm gamma/beta) equals the reference's *trainable* parameter count, and
adding the batch-norm running mean/var buffers gives Keras' "Total params" of `model.summary()`
(the reference counts below are worked out from the Keras code layer by layer; the KWS pair
24 908 / 23 756 also matches a `model.summary()` printout of the reference DS-CNN found in a
third-party README):

    name        reference model                          trainable   Keras total   MACs
    mlperf-kws  DS-CNN (ARM "Hello Edge" DS-CNN-S)       23 756      24 908        2.66 M
    mlperf-vww  MobileNetV1 alpha 0.25, 96 x 96 RGB      216 322     221 794       7.49 M
    mlperf-ic   ResNet-8 (EEMBC CIFAR-10 ResNet v1)      78 186      78 666        12.5 M
    mlperf-ad   FC autoencoder (DCASE 2020 baseline)     267 928     269 992       264 K

(MACs: conv and linear multiply-accumulates per inference, batch norm and pooling not counted;
`summary(name)` computes them from the layer shapes.)

Deviations from the Keras references, all of them PyTorch-side and none changing a layer's shape
or parameter count:
- TF 'same' padding is asymmetric when the total padding is odd: a stride-2 3 x 3 conv on an even
  map pads 0 above/left and 1 below/right; PyTorch's symmetric padding=1 gives the same output
  size with the sampling grid shifted by one pixel (VWW stem and stride-2 depthwise convs, IC
  stride-2 3 x 3 convs). The KWS stem (10 x 4, stride 2, 49 x 10 input) pads TF (4, 5) x (1, 1);
  PyTorch padding (5, 1) gives the same 25 x 5 map, one frame earlier in time. Stride-1 3 x 3 convs
  and the IC 1 x 1 stride-2 shortcuts (TF pads nothing there) are identical.
- Global pooling is AdaptiveAvgPool2d(1). The KWS reference pools with AveragePooling2D((24, 5))
  (int(49 / 2), int(10 / 2)) over the 25 x 5 map, i.e. the first 24 of 25 rows; here all 25.
- Softmax (KWS, VWW, IC) is left out: the models return logits. Dropout is kept where the
  reference has it (KWS) and is the identity at inference.

Weights (`MlperfModel.build(seed)`): conv/linear weights Kaiming-normal (fan-in, ReLU gain),
biases N(0, 0.05^2), batch-norm gamma ~ U(0.5, 1.5) and beta ~ N(0, 0.1^2), all from one
torch.Generator seeded with `seed` (the global RNG is left as it was). Then the batch-norm running
statistics are calibrated: one no-grad forward pass in train mode (batch norm only; dropout stays
in eval mode) over `inputs(n_cal, CALIBRATION_SEED)`, with momentum=None so the running mean/var
are exactly that batch's statistics. The model comes back in eval mode.

Synthetic inputs (`MlperfModel.inputs(n, seed)`), in each model's real layout and value range:
- KWS (N, 1, 49, 10): MFCC-like, time x coefficient. Per coefficient c a stationary AR(1) process
  over the 49 frames (correlation 0.8 frame to frame) of std 8 / (1 + c)^0.75 (c0 8.0, c1 4.8,
  c9 1.4), plus a "word": a Gaussian envelope in time (centre frame 12-36, width 3-8 frames) that
  adds a random spectral shape of the same per-coefficient spread (c0, the energy, always up).
  Signed, zero-mean apart from the word.
- VWW (N, 3, 96, 96) and IC (N, 3, 32, 32): images in [0, 1]. Smooth random fields: four octaves of
  bilinearly upsampled Gaussian noise (coarsest 2 x 2, amplitude halving per octave), a luminance
  field shared by the channels plus a weaker per-channel colour field, per-image brightness and
  contrast, 0.02 pixel noise, clamped to [0, 1].
- AD (N, 640): log-mel-like dB values, 5 consecutive frames x 128 mel bins concatenated frame by
  frame (frame t is x[:, 128 t : 128 (t + 1)], the reference's vector layout). A spectral envelope
  falling from about 0 dB (low mel) by 20-35 dB to the top bin, a smooth random ripple (std 3 dB),
  up to 6 machine-tone peaks of 6-12 dB (each present with probability 0.85), and per frame a gain
  of std 1 dB and per-bin noise of std 1.5 dB. Signed, about -36 to +15 overall.
"""
from __future__ import annotations

import math
from collections import OrderedDict
import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from aoncim.config import DEFAULT_CONFIG, AonCimConfig

__all__ = ["MlperfModel", "MODELS", "get", "summary", "ResNet8", "CALIBRATION_SEED"]

# Seed of the synthetic batch the batch-norm statistics are calibrated on (the same for every
# build seed, so only the weights change with the seed).
CALIBRATION_SEED = 20210601
KWS_CLASS_NAMES = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off",
                   "stop", "go")
VWW_CLASS_NAMES = ("no_person", "person")
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                       "truck")


# ---------------------------------------------------------------- architectures

def _cbr(prefix: str, c_in: int, c_out: int, kernel, stride=1, padding=0, groups: int = 1) -> list:
    """Conv (with bias, as Keras) -> BatchNorm2d -> ReLU, as named (name, module) pairs."""
    return [(f"{prefix}_conv", nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups)),
            (f"{prefix}_bn", nn.BatchNorm2d(c_out)),
            (f"{prefix}_relu", nn.ReLU())]


def ds_cnn_kws(n_classes: int = 12) -> nn.Sequential:
    """DS-CNN, the MLPerf Tiny keyword-spotting reference (mlcommons/tiny
    benchmark/training/keyword_spotting/keras_model.py, model "ds_cnn"; ARM's "Hello Edge" DS-CNN-S
    with 64 channels), input (1, 49, 10) MFCC (time x coefficient), 12 classes.

    stem  Conv2d(1, 64, (10, 4), stride 2, padding (5, 1)) + BN + ReLU -> 64 x 25 x 5, Dropout(0.2)
    4 x   depthwise Conv2d(64, 64, 3, padding 1, groups 64) + BN + ReLU,
          pointwise Conv2d(64, 64, 1) + BN + ReLU
    head  Dropout(0.4), AdaptiveAvgPool2d(1), Flatten, Linear(64, 12)
    """
    layers = _cbr("stem", 1, 64, (10, 4), stride=2, padding=(5, 1))
    layers.append(("stem_drop", nn.Dropout(0.2)))
    for i in range(1, 5):
        layers += _cbr(f"dw{i}", 64, 64, 3, padding=1, groups=64)
        layers += _cbr(f"pw{i}", 64, 64, 1)
    layers += [("drop", nn.Dropout(0.4)), ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
               ("fc", nn.Linear(64, n_classes))]
    return nn.Sequential(OrderedDict(layers))


# MobileNetV1 body: (pointwise output channels at alpha = 1, depthwise stride) for the 13
# depthwise-separable blocks; alpha = 0.25 divides every channel count by 4.
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1_vww(alpha: float = 0.25, n_classes: int = 2) -> nn.Sequential:
    """MobileNetV1 alpha = 0.25, the MLPerf Tiny visual-wake-words reference (mlcommons/tiny
    vww_model.py, after Silicon Labs' mobilenet_v1_eembc.py: the paper's structure, ReLU not ReLU6,
    biases on, no dropout / 1 x 1 classifier conv), input (3, 96, 96) RGB in [0, 1], 2 classes.

    stem  Conv2d(3, 8, 3, stride 2, padding 1) + BN + ReLU -> 8 x 48 x 48
    13 x  depthwise Conv2d(c, c, 3, stride s, padding 1, groups c) + BN + ReLU,
          pointwise Conv2d(c, c') + BN + ReLU; (c', s) = (16,1) (32,2) (32,1) (64,2) (64,1)
          (128,2) 5 x (128,1) (256,2) (256,1) -> 256 x 3 x 3
    head  AdaptiveAvgPool2d(1), Flatten, Linear(256, 2)
    """
    c = int(32 * alpha)
    layers = _cbr("stem", 3, c, 3, stride=2, padding=1)
    for i, (c_full, s) in enumerate(MOBILENET_V1_BLOCKS, 1):
        c_out = int(c_full * alpha)
        layers += _cbr(f"dw{i}", c, c, 3, stride=s, padding=1, groups=c)
        layers += _cbr(f"pw{i}", c, c_out, 1)
        c = c_out
    layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(c, n_classes))]
    return nn.Sequential(OrderedDict(layers))


class ResNet8(nn.Module):
    """ResNet-8, the MLPerf Tiny image-classification reference (mlcommons/tiny
    image_classification/keras_model.py `resnet_v1_eembc`, num_filters 16: the EEMBC CIFAR-10
    ResNet v1 with 16/32/64 filters, three stacks of one residual block), input (3, 32, 32) in
    [0, 1], 10 classes.

    stem     Conv2d(3, 16, 3, padding 1) + BN + ReLU
    stack 1  y = BN(Conv(16, 16, 3)) <- ReLU <- BN(Conv(16, 16, 3)); x = ReLU(x + y)   (identity)
    stack 2  y = BN(Conv(32, 32, 3)) <- ReLU <- BN(Conv(16, 32, 3, stride 2));
             x = ReLU(Conv(16, 32, 1, stride 2)(x) + y)                                -> 32 x 16 x 16
    stack 3  as stack 2 with 32 -> 64                                                  -> 64 x 8 x 8
    head     AdaptiveAvgPool2d(1) (the reference's 8 x 8 AveragePooling2D), Flatten, Linear(64, 10)

    The shortcut 1 x 1 convs have a bias and NO batch norm, exactly as the reference (its
    "Adjust for change in dimension" Conv2D is added to y directly).
    """

    def __init__(self, n_classes: int = 10, filters: int = 16):
        super().__init__()
        f1, f2, f3 = filters, 2 * filters, 4 * filters
        self.stem_conv, self.stem_bn, self.stem_relu = nn.Conv2d(3, f1, 3, padding=1), nn.BatchNorm2d(f1), nn.ReLU()
        # stack 1 (identity shortcut)
        self.s1_conv1, self.s1_bn1, self.s1_relu1 = nn.Conv2d(f1, f1, 3, padding=1), nn.BatchNorm2d(f1), nn.ReLU()
        self.s1_conv2, self.s1_bn2 = nn.Conv2d(f1, f1, 3, padding=1), nn.BatchNorm2d(f1)
        self.s1_relu = nn.ReLU()
        # stack 2
        self.s2_conv1, self.s2_bn1, self.s2_relu1 = nn.Conv2d(f1, f2, 3, 2, 1), nn.BatchNorm2d(f2), nn.ReLU()
        self.s2_conv2, self.s2_bn2 = nn.Conv2d(f2, f2, 3, padding=1), nn.BatchNorm2d(f2)
        self.s2_short = nn.Conv2d(f1, f2, 1, stride=2)
        self.s2_relu = nn.ReLU()
        # stack 3
        self.s3_conv1, self.s3_bn1, self.s3_relu1 = nn.Conv2d(f2, f3, 3, 2, 1), nn.BatchNorm2d(f3), nn.ReLU()
        self.s3_conv2, self.s3_bn2 = nn.Conv2d(f3, f3, 3, padding=1), nn.BatchNorm2d(f3)
        self.s3_short = nn.Conv2d(f2, f3, 1, stride=2)
        self.s3_relu = nn.ReLU()
        self.pool, self.flatten, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(f3, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_relu(self.stem_bn(self.stem_conv(x)))
        y = self.s1_bn2(self.s1_conv2(self.s1_relu1(self.s1_bn1(self.s1_conv1(x)))))
        x = self.s1_relu(x + y)
        y = self.s2_bn2(self.s2_conv2(self.s2_relu1(self.s2_bn1(self.s2_conv1(x)))))
        x = self.s2_relu(self.s2_short(x) + y)
        y = self.s3_bn2(self.s3_conv2(self.s3_relu1(self.s3_bn1(self.s3_conv1(x)))))
        x = self.s3_relu(self.s3_short(x) + y)
        return self.fc(self.flatten(self.pool(x)))


def fc_autoencoder_ad(input_dim: int = 640, hidden: int = 128, bottleneck: int = 8) -> nn.Sequential:
    """The deep fully-connected autoencoder, the MLPerf Tiny anomaly-detection reference
    (mlcommons/tiny anomaly_detection/keras_model.py, the DCASE 2020 Task 2 baseline by Hitachi),
    input (640,) = 5 frames x 128 log-mel bins (ToyADMOS ToyCar), output (640,) reconstruction.

    encoder  4 x [Linear(640 | 128, 128) + BatchNorm1d + ReLU], Linear(128, 8) + BatchNorm1d + ReLU
    decoder  4 x [Linear(8 | 128, 128) + BatchNorm1d + ReLU], Linear(128, 640) (no activation)
    """
    layers, c = [], input_dim
    for i, width in enumerate([hidden] * 4 + [bottleneck] + [hidden] * 4, 1):
        layers += [(f"fc{i}", nn.Linear(c, width)), (f"bn{i}", nn.BatchNorm1d(width)), (f"relu{i}", nn.ReLU())]
        c = width
    layers.append(("fc10", nn.Linear(c, input_dim)))
    return nn.Sequential(OrderedDict(layers))


# ---------------------------------------------------------------- synthetic inputs

def _ar1(g: torch.Generator, shape: tuple[int, ...], rho: float) -> torch.Tensor:
    """Unit-variance stationary AR(1) noise along the last axis."""
    e = torch.randn(shape, generator=g)
    out = torch.empty(shape)
    out[..., 0] = e[..., 0]
    k = math.sqrt(1.0 - rho * rho)
    for t in range(1, shape[-1]):
        out[..., t] = rho * out[..., t - 1] + k * e[..., t]
    return out


def kws_inputs(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, 49, 10) MFCC-like features (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    frames, n_coef = 49, 10
    std = 8.0 / (1.0 + torch.arange(n_coef, dtype=torch.float32)) ** 0.75           # (10,)
    x = _ar1(g, (n, n_coef, frames), 0.8) * std[None, :, None]                       # (n, c, t)
    t = torch.arange(frames, dtype=torch.float32)
    centre = 12.0 + 24.0 * torch.rand(n, 1, generator=g)
    width = 3.0 + 5.0 * torch.rand(n, 1, generator=g)
    env = torch.exp(-0.5 * ((t[None, :] - centre) / width) ** 2)                     # (n, t)
    shape = torch.randn(n, n_coef, generator=g) * std
    shape[:, 0] = shape[:, 0].abs() + std[0]                                         # speech raises the energy
    x = x + shape[:, :, None] * env[:, None, :]
    return x.transpose(1, 2).unsqueeze(1).contiguous()                               # (n, 1, t, c)


def _smooth_field(g: torch.Generator, n: int, c: int, size: int, coarsest: int = 2, octaves: int = 4) -> torch.Tensor:
    """Sum of bilinearly upsampled Gaussian noise octaves, normalised to unit std per image."""
    out = torch.zeros(n, c, size, size)
    for o in range(octaves):
        s = coarsest * 2 ** o
        noise = torch.randn(n, c, s, s, generator=g)
        out += 0.5 ** o * F.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)
    return out / out.flatten(1).std(dim=1).clamp_min(1e-6)[:, None, None, None]


def image_inputs(n: int, seed: int = 0, size: int = 96) -> torch.Tensor:
    """(n, 3, size, size) smooth random RGB images in [0, 1] (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    lum = _smooth_field(g, n, 1, size)
    col = _smooth_field(g, n, 3, size)
    brightness = 0.5 + 0.24 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5)
    contrast = 0.08 + 0.1 * torch.rand(n, 1, 1, 1, generator=g)
    x = brightness + contrast * (lum + 0.4 * col) + 0.02 * torch.randn(n, 3, size, size, generator=g)
    return x.clamp(0.0, 1.0)


def ad_inputs(n: int, seed: int = 0, n_mels: int = 128, frames: int = 5) -> torch.Tensor:
    """(n, frames * n_mels) log-mel-like dB vectors, frame-major (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.arange(n_mels, dtype=torch.float32) / (n_mels - 1)
    level = 5.0 * (torch.rand(n, 1, generator=g) - 0.5)
    tilt = 20.0 + 15.0 * torch.rand(n, 1, generator=g)
    env = level - tilt * m[None, :] + 3.0 * _ar1(g, (n, n_mels), 0.9)                # (n, mel)
    mel = torch.arange(n_mels, dtype=torch.float32)
    for _ in range(6):                                                                # machine tones
        pos = 4.0 + (n_mels - 8) * torch.rand(n, 1, generator=g)
        amp = (6.0 + 6.0 * torch.rand(n, 1, generator=g)) * (torch.rand(n, 1, generator=g) < 0.85)
        env = env + amp * torch.exp(-0.5 * ((mel[None, :] - pos) / 1.5) ** 2)
    x = env[:, None, :] + torch.randn(n, frames, 1, generator=g) + 1.5 * torch.randn(n, frames, n_mels, generator=g)
    return x.reshape(n, frames * n_mels)


# ---------------------------------------------------------------- weights

@torch.no_grad()
def _init_weights(net: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=g)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.05, generator=g)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.1, generator=g)


@torch.no_grad()
def _calibrate_bn(net: nn.Module, x: torch.Tensor) -> None:
    """Running statistics = the statistics of batch x, layer by layer (one train-mode pass)."""
    net.eval()
    bns = [m for m in net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None          # cumulative average: after one batch, exactly its statistics
        m.train()
    net(x)
    for m in bns:
        m.momentum = 0.1
    net.eval()


# ---------------------------------------------------------------- registry

@dataclass(frozen=True)
class MlperfModel:
    """One MLPerf Tiny benchmark model: its reference, shapes, synthetic inputs and a builder."""
    name: str                          # "mlperf-kws", ...
    title: str
    input_shape: tuple[int, ...]       # without the batch axis
    outputs: int                       # classes (KWS, VWW, IC) or reconstructed features (AD)
    reference: str                     # which reference model / variant, and where it is defined
    reference_params: int              # Keras model.summary() "Total params" of the reference
    reference_trainable: int           # ... "Trainable params" (= this PyTorch model's parameters())
    input_note: str                    # layout and value range of `inputs`
    class_names: tuple[str, ...] = ()
    n_calibration: int = 128           # synthetic samples the batch-norm statistics come from
    # Config fields that differ from the default chip so the model fits (empty: it fits as is);
    # the compiler's error on the default chip names the resource (docs/performance.md).
    chip: tuple[tuple[str, int], ...] = ()
    _make: Callable[[], nn.Module] = field(default=None, repr=False, compare=False)
    _inputs: Callable[[int, int], torch.Tensor] = field(default=None, repr=False, compare=False)

    def inputs(self, n: int, seed: int = 0) -> torch.Tensor:
        """n deterministic synthetic inputs (n, *input_shape), float32, in the real layout and range."""
        return self._inputs(n, seed)

    def config(self, base: AonCimConfig = DEFAULT_CONFIG) -> AonCimConfig:
        """`base` with the fields this model needs to fit (`chip`) raised to at least their values."""
        kw = {k: max(v, getattr(base, k)) for k, v in self.chip}
        return dataclasses.replace(base, **kw) if kw else base

    def build(self, seed: int = 0) -> nn.Module:
        """The model with seeded random weights and calibrated batch norm, in eval mode.

        Deterministic: the same seed gives an identical state_dict. The global torch RNG is not
        touched (module construction runs under fork_rng; all draws use a private generator)."""
        with torch.random.fork_rng(devices=[]):
            net = self._make()
        _init_weights(net, seed)
        _calibrate_bn(net, self.inputs(self.n_calibration, CALIBRATION_SEED))
        net.input_shape = self.input_shape
        if self.class_names:
            net.class_names = self.class_names
        return net


MODELS: dict[str, MlperfModel] = {m.name: m for m in (
    MlperfModel(
        name="mlperf-kws", title="Keyword spotting: DS-CNN (small), Speech Commands v2, 12 classes",
        input_shape=(1, 49, 10), outputs=12,
        reference="MLPerf Tiny v1.0 KWS reference: DS-CNN from mlcommons/tiny benchmark/training/"
                  "keyword_spotting/keras_model.py (ARM Hello Edge DS-CNN-S, 64 channels, 4 DS blocks)",
        reference_params=24_908, reference_trainable=23_756,
        input_note="(1, 49, 10) MFCC time x coefficient, signed, per-coefficient std 8/(1+c)^0.75",
        class_names=KWS_CLASS_NAMES, n_calibration=256,
        _make=ds_cnn_kws, _inputs=kws_inputs),
    MlperfModel(
        name="mlperf-vww", title="Visual wake words: MobileNetV1 0.25, 96 x 96 RGB, person / no person",
        input_shape=(3, 96, 96), outputs=2,
        reference="MLPerf Tiny v1.0 VWW reference: MobileNetV1 alpha=0.25 from mlcommons/tiny "
                  "vww_model.py (Silicon Labs mobilenet_v1_eembc.py), 13 DS blocks, ReLU, biases",
        reference_params=221_794, reference_trainable=216_322,
        input_note="(3, 96, 96) RGB in [0, 1], smooth random fields",
        class_names=VWW_CLASS_NAMES, n_calibration=48,
        # 29 chip layers, 2994 output channels; a 96x96x3 input and a 48x48x16 map; the 13 depthwise
        # layers' 11160 weights on the depthwise engine. (Block-diagonal on the array instead,
        # depthwise="array", they would need a 2048 x 2048 array: docs/performance.md.)
        chip=(("act_depth", 65536), ("max_layers", 32), ("param_depth", 4096), ("dw_depth", 16384)),
        _make=mobilenet_v1_vww, _inputs=lambda n, seed: image_inputs(n, seed, 96)),
    MlperfModel(
        name="mlperf-ic", title="Image classification: ResNet-8, CIFAR-10 32 x 32 RGB, 10 classes",
        input_shape=(3, 32, 32), outputs=10,
        reference="MLPerf Tiny v1.0 IC reference: ResNet-8 `resnet_v1_eembc` (16/32/64 filters, one "
                  "block per stack, 1x1 stride-2 shortcut conv without batch norm) from mlcommons/tiny "
                  "image_classification/keras_model.py",
        reference_params=78_666, reference_trainable=78_186,
        input_note="(3, 32, 32) RGB in [0, 1], smooth random fields",
        class_names=CIFAR10_CLASS_NAMES, n_calibration=128,
        # The first block's skip (32x32x16) and its main branch sit side by side in one bank.
        chip=(("act_depth", 32768),),
        _make=ResNet8, _inputs=lambda n, seed: image_inputs(n, seed, 32)),
    MlperfModel(
        name="mlperf-ad", title="Anomaly detection: FC autoencoder, ToyADMOS ToyCar, 5 x 128 log-mel",
        input_shape=(640,), outputs=640,
        reference="MLPerf Tiny v1.0 AD reference: deep FC autoencoder (DCASE 2020 Task 2 baseline) from "
                  "mlcommons/tiny anomaly_detection/keras_model.py, 640-128x4-8-128x4-640",
        reference_params=269_992, reference_trainable=267_928,
        input_note="(640,) = 5 frames x 128 log-mel dB, frame-major, signed",
        n_calibration=512,
        # The last layer has 640 output columns (and 640 outputs to hold).
        chip=(("cols", 1024), ("out_depth", 1024)),
        _make=fc_autoencoder_ad, _inputs=ad_inputs),
)}


CALIB_SAMPLES = 128
CALIB_SEED_INPUTS = 1_000_003  # calibration inputs: a stream of their own, never a test input


def compile_model(name: str, cfg: AonCimConfig | None = None, act_bits: int = 8, depthwise: str = "digital"):
    """MLPerf model `name` (weights of seed 0) compiled for `cfg` (default: the model's own
    config) at `act_bits`, calibrated on CALIB_SAMPLES synthetic inputs: the Program that
    `aoncim cosim --model`, `aoncim report` and the benchmarks run."""
    from aoncim.firmware.compiler import compile_network

    m = get(name)
    return compile_network(m.build(0), cfg or m.config(), m.inputs(CALIB_SAMPLES, CALIB_SEED_INPUTS),
                           act_bits=act_bits, depthwise=depthwise)


def get(name: str) -> MlperfModel:
    """The MLPerf Tiny model called `name`; ValueError (one line, listing the names) otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown MLPerf Tiny model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def summary(name: str, net: nn.Module | None = None) -> dict:
    """Parameters, MACs (conv + linear multiply-accumulates per inference, from the layer shapes),
    input shape and layer counts of one model (built with seed 0 unless `net` is given)."""
    spec = get(name)
    net = spec.build() if net is None else net
    layers: list[dict] = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            macs = out[0].numel() * kh * kw * m.in_channels // m.groups
            kind = "dwconv" if m.groups > 1 and m.groups == m.in_channels else "conv"
        else:
            macs, kind = m.in_features * m.out_features, "linear"
        layers.append({"name": names[m], "kind": kind, "in": tuple(inp[0].shape[1:]),
                       "out": tuple(out.shape[1:]), "macs": macs,
                       "params": sum(p.numel() for p in m.parameters())})

    names = {m: n for n, m in net.named_modules()}
    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, *spec.input_shape))
    finally:
        for h in hs:
            h.remove()
    params = sum(p.numel() for p in net.parameters())
    bn_stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    return {"name": name, "title": spec.title, "input_shape": spec.input_shape, "outputs": spec.outputs,
            "params": params, "params_with_bn_stats": params + bn_stats,
            "reference_params": spec.reference_params, "reference_trainable": spec.reference_trainable,
            "macs": sum(L["macs"] for L in layers), "weight_layers": len(layers),
            "modules": sum(1 for m in net.modules() if not list(m.children())),
            "layers": layers}


if __name__ == "__main__":
    for key in MODELS:
        s = summary(key)
        print(f"{key:11s} params {s['params']:7d} (+BN stats {s['params_with_bn_stats']:7d}, reference "
              f"{s['reference_trainable']} / {s['reference_params']})  MACs {s['macs']:9d}  "
              f"weight layers {s['weight_layers']}  input {s['input_shape']}")
