"""LeNet-5 for 28×28 MNIST digits, with a modern choice of activation and pooling."""

from torch import Tensor, nn

from convscope import layer_types

# Every activation layer type (relu, sigmoid, tanh, leaky_relu), built with its module's defaults.
ACTIVATIONS: dict[str, type[nn.Module]] = {id: t.modules[0] for id, t in layer_types.ACTIVATIONS.items()}
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class LeNet(nn.Module):
    """conv 5×5 → act → pool → conv 5×5 → act → pool → 3 linear layers (LeCun et al., 1998)."""

    def __init__(self, activation: str = "relu", pooling: str = "max", num_classes: int = 10) -> None:
        super().__init__()
        act, pool = ACTIVATIONS[activation], POOLS[pooling]
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)  # 1×28×28 → 6×28×28
        self.act1 = act()
        self.pool1 = pool(kernel_size=2, stride=2)  # → 6×14×14
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)  # → 16×10×10
        self.act2 = act()
        self.pool2 = pool(kernel_size=2, stride=2)  # → 16×5×5
        self.flatten = nn.Flatten()  # → 400
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.act3 = act()
        self.fc2 = nn.Linear(120, 84)
        self.act4 = act()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        x = self.flatten(x)
        x = self.act3(self.fc1(x))
        x = self.act4(self.fc2(x))
        return self.fc3(x)  # logits
