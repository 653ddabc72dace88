"""Small test networks that exercise what the engine must handle, each with a hand-written reference.

`reference(x)` recomputes every layer the engine should report, by name, with plain
out-of-place PyTorch calls on the same modules: an answer that shares no code with the engine.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ResidualNet(nn.Module):
    """stem conv → [conv → bn → relu → conv → bn] + identity → relu → global pool → linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: Tensor) -> Tensor:
        identity = self.stem(x)
        out = F.relu(self.bn1(self.conv1(identity)))
        out = self.bn2(self.conv2(out))
        out = F.relu(out + identity)
        out = F.adaptive_avg_pool2d(out, 1)
        out = torch.flatten(out, 1)
        return self.fc(out)

    def reference(self, x: Tensor) -> dict[str, Tensor]:
        r = {"stem": self.stem(x)}
        r["conv1"] = self.conv1(r["stem"])
        r["bn1"] = self.bn1(r["conv1"])
        r["relu"] = F.relu(r["bn1"])
        r["conv2"] = self.conv2(r["relu"])
        r["bn2"] = self.bn2(r["conv2"])
        r["add"] = r["bn2"] + r["stem"]
        r["relu_1"] = F.relu(r["add"])
        r["adaptive_avg_pool2d"] = F.adaptive_avg_pool2d(r["relu_1"], 1)
        r["flatten"] = torch.flatten(r["adaptive_avg_pool2d"], 1)
        r["fc"] = self.fc(r["flatten"])
        return r


class MixedNet(nn.Module):
    """Two branches joined by torch.cat, a grouped dilated strided conv, functional pooling and view."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(1, 4, 3, padding=1)
        self.act_a = nn.ReLU(inplace=True)
        self.conv_b = nn.Conv2d(1, 4, 5, padding=2)
        self.act_b = nn.Tanh()
        self.grouped = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=2)  # 12 → 6
        self.leaky = nn.LeakyReLU(0.1)
        self.fc = nn.Linear(8 * 3 * 3, 16)
        self.gate = nn.Sigmoid()
        self.out = nn.Linear(16, 10)

    def forward(self, x: Tensor) -> Tensor:
        a = self.act_a(self.conv_a(x))
        b = self.act_b(self.conv_b(x))
        x = torch.cat([a, b], 1)
        x = self.leaky(self.grouped(x))
        x = F.max_pool2d(x, 2)  # 6 → 3
        x = F.leaky_relu(x, 0.2)
        x = x.view(x.size(0), -1)
        x = self.gate(self.fc(x))
        return self.out(x)

    def reference(self, x: Tensor) -> dict[str, Tensor]:
        r = {"conv_a": self.conv_a(x)}
        r["act_a"] = F.relu(r["conv_a"])
        r["conv_b"] = self.conv_b(x)
        r["act_b"] = torch.tanh(r["conv_b"])
        r["cat"] = torch.cat([r["act_a"], r["act_b"]], 1)
        r["grouped"] = self.grouped(r["cat"])
        r["leaky"] = F.leaky_relu(r["grouped"], 0.1)
        r["max_pool2d"] = F.max_pool2d(r["leaky"], 2)
        r["leaky_relu"] = F.leaky_relu(r["max_pool2d"], 0.2)
        r["view"] = r["leaky_relu"].reshape(1, -1)
        r["fc"] = self.fc(r["view"])
        r["gate"] = torch.sigmoid(r["fc"])
        r["out"] = self.out(r["gate"])
        return r


class InplaceNet(nn.Module):
    """Every kind of in-place op, including one whose input is read again after it is mutated."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 5 * 5, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.conv1(x))
        y = self.conv2(x)
        z = F.relu(y, inplace=True)  # y is now rectified too: in eager PyTorch y and z are one tensor
        s = (y + z) - 1.0
        s = s.relu_()
        s = self.relu(s * 2.0 - 0.5)  # the same module a second time
        s = F.avg_pool2d(s, 2)  # 10 → 5
        return self.fc(s.flatten(1))

    def reference(self, x: Tensor) -> dict[str, Tensor]:
        r = {"conv1": self.conv1(x)}
        r["relu"] = F.relu(r["conv1"])
        r["conv2"] = self.conv2(r["relu"])
        r["relu_1"] = F.relu(r["conv2"])
        r["add"] = r["relu_1"] + r["relu_1"]
        r["sub"] = r["add"] - 1.0
        r["relu_"] = F.relu(r["sub"])
        r["mul"] = r["relu_"] * 2.0
        r["sub_1"] = r["mul"] - 0.5
        r["relu_2"] = F.relu(r["sub_1"])
        r["avg_pool2d"] = F.avg_pool2d(r["relu_2"], 2)
        r["flatten"] = r["avg_pool2d"].flatten(1)
        r["fc"] = self.fc(r["flatten"])
        return r


class BasicBlock(nn.Module):
    """torchvision's ResNet block: one in-place ReLU module used twice, `out += identity`."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class MiniResNet(nn.Module):
    """A two-block ResNet laid out like torchvision's, for qualified layer names and nested modules."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)  # 16 → 8
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2))  # 8 → 4
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layer1(x))
        return self.fc(torch.flatten(x, 1))


def settle_batch_norm(model: nn.Module, input_shape: list[int], batches: int = 4) -> nn.Module:
    """Give batch norm non-trivial running statistics with a few train-mode batches, then eval()."""
    model.train()
    with torch.no_grad():
        for i in range(batches):
            model(torch.randn(8, *input_shape) * (1 + i) + 0.5)
    return model.eval()


def make(name: str) -> tuple[nn.Module, list[int]]:
    """A fresh, seeded, eval-mode instance of a test or built-in network, and its input [C, H, W]."""
    from convscope.models.lenet import LeNet
    from convscope.models.tinyvgg import TinyVGG

    torch.manual_seed(0)
    if name == "residual":
        return settle_batch_norm(ResidualNet(), [3, 12, 12]), [3, 12, 12]
    if name == "resnet":
        return settle_batch_norm(MiniResNet(), [3, 16, 16]), [3, 16, 16]
    factories = {"lenet": (LeNet, [1, 28, 28]), "tinyvgg": (TinyVGG, [1, 28, 28]),
                 "mixed": (MixedNet, [1, 12, 12]), "inplace": (InplaceNet, [1, 10, 10])}
    cls, shape = factories[name]
    return cls().eval(), shape


NAMES = ["lenet", "tinyvgg", "residual", "resnet", "mixed", "inplace"]
