"""Networks no one here designed the chip for, shared by the front-end, compiler and
co-simulation tests: what a user brings."""
import torch
from torch import nn


class SignalNet(nn.Module):
    """A Conv1d stem on a signed (N, 4, 48) signal, a depthwise-separable block, a residual block,
    global pooling and a linear head: every new op of the graph compiler at once."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(4, 12, 5, stride=2, padding=2), nn.BatchNorm1d(12), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv1d(12, 12, 3, padding=1, groups=12), nn.BatchNorm1d(12), nn.ReLU6(),
                                nn.Conv1d(12, 16, 1), nn.BatchNorm1d(16), nn.ReLU())
        self.c1 = nn.Sequential(nn.Conv1d(16, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv1d(16, 16, 3, padding=1), nn.BatchNorm1d(16))
        self.head = nn.Linear(16, 6)

    def forward(self, x):
        x = self.dw(self.stem(x))
        x = torch.relu(self.c2(self.c1(x)) + x)
        return self.head(x.mean(-1))


def signal_inputs(n: int, seed: int) -> torch.Tensor:
    """Signed (n, 4, 48) inputs with unequal channel spreads."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 48, generator=g) * torch.linspace(0.5, 2.0, 4)[:, None]


def signal_net(seed: int = 1) -> nn.Module:
    """SignalNet with seeded weights and batch-norm statistics from its inputs (realistic ranges)."""
    torch.manual_seed(seed)
    net = SignalNet().train()
    with torch.no_grad():
        net(signal_inputs(96, seed))
    return net.eval()
