"""TinyNet: the walking skeleton's network, conv3x3 -> ReLU -> flatten -> FC."""
from __future__ import annotations

from importlib import resources

import torch
from torch import nn

from .patterns import N_CLASSES, make_patterns

WEIGHTS = "tiny.pt"


class TinyNet(nn.Module):
    def __init__(self, in_ch: int = 2, ch: int = 8, size: int = 8, n_classes: int = N_CLASSES):
        super().__init__()
        self.input_shape = (in_ch, size, size)
        self.conv = nn.Conv2d(in_ch, ch, 3, stride=1, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(ch * size * size, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.relu(self.conv(x)), 1))


def train_tiny(seed: int = 0, n_train: int = 4000, epochs: int = 15) -> tuple[TinyNet, float]:
    """Deterministic float training on the procedural patterns; returns (model, test accuracy)."""
    torch.manual_seed(seed)
    net = TinyNet()
    x, y = make_patterns(n_train, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        perm = torch.randperm(n_train)
        for i in range(0, n_train, 64):
            idx = perm[i : i + 64]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net, accuracy(net)


@torch.no_grad()
def accuracy(net: nn.Module, n: int = 1000, seed: int = 12345) -> float:
    x, y = make_patterns(n, seed=seed)
    return (net(x).argmax(1) == y).float().mean().item()


def load_tiny() -> TinyNet:
    """The shipped TinyNet weights (retrain with `python -m aoncim.model.tiny -o FILE`, then copy by hand)."""
    net = TinyNet()
    with resources.files(__package__).joinpath("weights", WEIGHTS).open("rb") as f:
        net.load_state_dict(torch.load(f, weights_only=True))
    return net.eval()


if __name__ == "__main__":
    import argparse

    from aoncim.outputs import check_output_file, write_atomic

    ap = argparse.ArgumentParser(description="Retrain TinyNet. The shipped weights are never overwritten: "
                                 "a maintainer copies the result into model/weights/ by hand.")
    ap.add_argument("-o", "--out", default=f"out/{WEIGHTS}", help="weights file to write (default: %(default)s)")
    out = check_output_file(ap.parse_args().out)
    model, acc = train_tiny()
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    write_atomic(out, buf.getvalue())
    print(f"saved {out} ({out.stat().st_size} bytes), float test accuracy {acc:.3f}")
