"""TinyVGG: the small VGG-style network CNN Explainer teaches with, sized for 28×28 images."""

from torch import Tensor, nn

from convscope.models.lenet import ACTIVATIONS, POOLS


class TinyVGG(nn.Module):
    """Two blocks of (conv 3×3 → act → conv 3×3 → act → pool), then one linear classifier."""

    def __init__(
        self,
        channels: int = 16,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        activation: str = "relu",
        pooling: str = "max",
    ) -> None:
        super().__init__()
        act, pool = ACTIVATIONS[activation], POOLS[pooling]
        c = channels
        # padding=1 keeps 28×28 through each conv; each pool halves it: 28 → 14 → 7.
        self.conv1_1 = nn.Conv2d(in_channels, c, kernel_size=3, padding=1)
        self.act1_1 = act()
        self.conv1_2 = nn.Conv2d(c, c, kernel_size=3, padding=1)
        self.act1_2 = act()
        self.pool1 = pool(kernel_size=2, stride=2)
        self.conv2_1 = nn.Conv2d(c, c, kernel_size=3, padding=1)
        self.act2_1 = act()
        self.conv2_2 = nn.Conv2d(c, c, kernel_size=3, padding=1)
        self.act2_2 = act()
        self.pool2 = pool(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(c * (image_size // 4) ** 2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.act1_2(self.conv1_2(self.act1_1(self.conv1_1(x)))))
        x = self.pool2(self.act2_2(self.conv2_2(self.act2_1(self.conv2_1(x)))))
        return self.classifier(self.flatten(x))  # logits
