"""A ResNet-18-shaped network in plain PyTorch (no torchvision), with seeded random weights.

He et al., "Deep Residual Learning for Image Recognition" (2015), laid out as torchvision's
`resnet18`, with the same module names and tensor shapes: a 7×7 stride-2 stem with batch norm,
ReLU and a 3×3 max-pool, four stages of two BasicBlocks (64, 128, 256, 512 channels; the first
block of stages 2-4 halves the size with a stride-2 conv and a 1×1 stride-2 downsample), global
average pooling and a linear layer. The weights are random, not trained: the predictions mean
nothing, but every layer computes what a trained ResNet-18's would.

    factory = "examples.resnet18:resnet18"   # in a models file; see examples/resnet18.toml
"""

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """conv 3×3 → BN → ReLU → conv 3×3 → BN, plus the input (downsampled if the shape changes) → ReLU."""

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
        out += identity  # the residual addition
        return self.relu(out)


class ResNet18(nn.Module):
    """[3, 224, 224] → 64×112×112 → 64×56×56 → 128×28×28 → 256×14×14 → 512×7×7 → 512 → classes."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._stage(64, 64, stride=1)
        self.layer2 = self._stage(64, 128, stride=2)
        self.layer3 = self._stage(128, 256, stride=2)
        self.layer4 = self._stage(256, 512, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    @staticmethod
    def _stage(inplanes: int, planes: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(num_classes: int = 1000, seed: int = 0) -> ResNet18:
    """A ResNet-18 with random weights drawn from `seed` (the global random state is left as it was).

    Convolutions get He initialisation (fan-out, as torchvision's); every batch norm gets a
    scale around 1, a small shift and running statistics that are not the identity, so that batch
    norm visibly changes its input."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ResNet18(num_classes)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    m.weight.uniform_(0.7, 1.3)
                    m.bias.normal_(0.0, 0.1)
                    m.running_mean.normal_(0.0, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
    return model.eval()
