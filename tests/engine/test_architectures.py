"""Architectures beyond tests/nets.py's: a depthwise conv, asymmetric kernels and strides on a
non-square input, a grouped dilated strided conv beside a strided 1×1 projection (a residual add),
three Inception branches joined by torch.cat, and adaptive average and max pooling to sizes that do
not divide the input. Graph, every feature map, and every input, activation and weight gradient
equal plain PyTorch (a hand-written reference and torch.autograd)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.engine.graph import Layer, build_graph
from convscope.engine.probe import LOSSES, backward, forward
from tests.nets import settle_batch_norm

SHAPE = [3, 21, 30]  # odd and non-square: stride and padding arithmetic differ along H and W
close = torch.testing.assert_close
# The reference writes batch norm and max pooling its own way: in float32 the roundings would differ, and a
# ReLU or max-pool near a tie could route a gradient another way. So both sides run in float64, where two
# orders of at most DEEPEST roundings in a row (~500 terms summed along the deepest path forward, as many
# back) agree within 2·γ(DEEPEST) of the largest value, γ(n) = n·u / (1 − n·u), u = 2⁻⁵³.
DEEPEST = 1024
F64_BOUND = 2 * DEEPEST * 2.0**-53 / (1 - DEEPEST * 2.0**-53)


def close64(got: Tensor, expected: Tensor, what: str) -> None:
    """float64 tensors equal within F64_BOUND of `expected`'s largest value."""
    assert got.dtype == expected.dtype == torch.float64, what
    atol = F64_BOUND * float(expected.abs().max())
    close(got, expected, rtol=0, atol=atol, msg=lambda m: f"{what}: {m}")


class Inception(nn.Module):
    """stem (3×5, stride 1×2) → BN → ReLU → [depthwise → ReLU → grouped dilated stride 2]
    + [1×1 stride 2 → BN] → ReLU → cat(1×1, dilated 3×3, max-pool → 1×1)
    → cat(adaptive avg to 3×2, adaptive max to 1) → linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 12, (3, 5), stride=(1, 2), padding=(1, 2))  # 21×30 → 21×15
        self.bn = nn.BatchNorm2d(12)
        self.depthwise = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.grouped = nn.Conv2d(12, 24, 3, stride=2, padding=2, dilation=2, groups=3)  # → 11×8
        self.project = nn.Conv2d(12, 24, 1, stride=2, bias=False)  # → 11×8
        self.project_bn = nn.BatchNorm2d(24)
        self.branch_a = nn.Conv2d(24, 8, 1)
        self.branch_b = nn.Conv2d(24, 8, 3, padding=3, dilation=3)
        self.branch_c = nn.Conv2d(24, 8, 1)
        self.avg = nn.AdaptiveAvgPool2d((3, 2))  # 11×8 → 3×2: overlapping windows of unequal size
        self.max = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(24 * 3 * 2 + 24, 7)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn(self.stem(x)))
        y = self.grouped(F.relu(self.depthwise(x)))
        x = F.relu(y + self.project_bn(self.project(x)))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        x = torch.cat([self.branch_a(x), self.branch_b(x), self.branch_c(pooled)], dim=1)
        a = torch.flatten(self.avg(x), 1)
        m = torch.flatten(self.max(x), 1)
        return self.fc(torch.cat([a, m], 1))

    def reference(self, x: Tensor) -> dict[str, Tensor]:
        """Every layer by name, from torch.nn.functional on the same weights."""
        r = {"stem": F.conv2d(x, self.stem.weight, self.stem.bias, (1, 2), (1, 2))}
        r["bn"] = _norm(r["stem"], self.bn)
        r["relu"] = F.relu(r["bn"])
        r["depthwise"] = F.conv2d(r["relu"], self.depthwise.weight, self.depthwise.bias, 1, 1, 1, 12)
        r["relu_1"] = F.relu(r["depthwise"])
        r["grouped"] = F.conv2d(r["relu_1"], self.grouped.weight, self.grouped.bias, 2, 2, 2, 3)
        r["project"] = F.conv2d(r["relu"], self.project.weight, None, 2)
        r["project_bn"] = _norm(r["project"], self.project_bn)
        r["add"] = r["grouped"] + r["project_bn"]
        r["relu_2"] = F.relu(r["add"])
        r["max_pool2d"] = F.max_pool2d(r["relu_2"], 3, 1, 1)
        r["branch_a"] = F.conv2d(r["relu_2"], self.branch_a.weight, self.branch_a.bias)
        r["branch_b"] = F.conv2d(r["relu_2"], self.branch_b.weight, self.branch_b.bias, 1, 3, 3)
        r["branch_c"] = F.conv2d(r["max_pool2d"], self.branch_c.weight, self.branch_c.bias)
        r["cat"] = torch.cat([r["branch_a"], r["branch_b"], r["branch_c"]], 1)
        r["avg"] = F.adaptive_avg_pool2d(r["cat"], (3, 2))
        r["flatten"] = r["avg"].reshape(1, -1)
        r["max"] = r["cat"].amax(dim=(2, 3), keepdim=True)
        r["flatten_1"] = r["max"].reshape(1, -1)
        r["cat_1"] = torch.cat([r["flatten"], r["flatten_1"]], 1)
        r["fc"] = F.linear(r["cat_1"], self.fc.weight, self.fc.bias)
        return r


def _norm(x: Tensor, bn: nn.BatchNorm2d) -> Tensor:
    """Eval-mode batch norm written out: (x - running mean) / sqrt(running var + eps) * weight + bias."""
    shape = (1, -1, 1, 1)
    scale = (bn.running_var + bn.eps).rsqrt().view(shape)
    return (x - bn.running_mean.view(shape)) * scale * bn.weight.view(shape) + bn.bias.view(shape)


@pytest.fixture(scope="module")
def net() -> Inception:
    torch.manual_seed(0)
    model = settle_batch_norm(Inception(), SHAPE)
    assert isinstance(model, Inception)
    return model


@pytest.fixture(scope="module")
def net64(net: Inception) -> Inception:
    return copy.deepcopy(net).double()


def by_name(layers: list[Layer]) -> dict[str, Layer]:
    return {layer.name: layer for layer in layers}


def conv(in_: int, out: int, kernel: list[int], stride: list[int], padding: list[int], dilation: list[int],
         groups: int) -> dict[str, object]:
    return {"in_channels": in_, "out_channels": out, "kernel_size": kernel, "stride": stride, "padding": padding,
            "dilation": dilation, "groups": groups, "padding_mode": "zeros"}


def test_graph_has_every_type_wire_shape_and_attribute(net: Inception) -> None:
    graph = build_graph(net, SHAPE)
    layers = by_name(graph.layers)
    assert [(l.name, l.type) for l in graph.layers] == [
        ("stem", "conv2d"), ("bn", "batch_norm2d"), ("relu", "relu"), ("depthwise", "conv2d"), ("relu_1", "relu"),
        ("grouped", "conv2d"), ("project", "conv2d"), ("project_bn", "batch_norm2d"), ("add", "add"),
        ("relu_2", "relu"), ("max_pool2d", "max_pool2d"), ("branch_a", "conv2d"), ("branch_b", "conv2d"),
        ("branch_c", "conv2d"), ("cat", "cat"), ("avg", "adaptive_avg_pool2d"), ("flatten", "flatten"),
        ("max", "adaptive_max_pool2d"), ("flatten_1", "flatten"), ("cat_1", "cat"), ("fc", "linear")]
    assert layers["stem"].attributes == conv(3, 12, [3, 5], [1, 2], [1, 2], [1, 1], 1)
    assert layers["stem"].output_shape == [12, 21, 15]
    assert layers["depthwise"].attributes == conv(12, 12, [3, 3], [1, 1], [1, 1], [1, 1], 12)
    assert layers["depthwise"].parameters == {"weight": [12, 1, 3, 3], "bias": [12]}
    assert layers["grouped"].attributes == conv(12, 24, [3, 3], [2, 2], [2, 2], [2, 2], 3)
    assert layers["grouped"].parameters == {"weight": [24, 4, 3, 3], "bias": [24]}
    assert layers["grouped"].output_shape == layers["project"].output_shape == [24, 11, 8]
    assert layers["project"].inputs == ["relu"] and layers["project"].parameters == {"weight": [24, 12, 1, 1]}
    assert layers["project_bn"].buffers == {"running_mean": [24], "running_var": [24]}
    assert layers["add"].inputs == ["grouped", "project_bn"]
    assert layers["branch_b"].attributes == conv(24, 8, [3, 3], [1, 1], [3, 3], [3, 3], 1)
    assert layers["max_pool2d"].attributes == {
        "kernel_size": [3, 3], "stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "ceil_mode": False}
    assert layers["branch_c"].inputs == ["max_pool2d"]
    assert layers["cat"].inputs == ["branch_a", "branch_b", "branch_c"] and layers["cat"].attributes == {"dim": 1}
    assert layers["cat"].output_shape == [24, 11, 8]
    assert layers["avg"].attributes == {"output_size": [3, 2]} and layers["avg"].output_shape == [24, 3, 2]
    assert layers["max"].attributes == {"output_size": [1, 1]} and layers["max"].inputs == ["cat"]
    assert layers["cat_1"].inputs == ["flatten", "flatten_1"] and layers["cat_1"].output_shape == [168]
    assert layers["fc"].output_shape == [7]


def test_every_feature_map_equals_the_functional_reference(net: Inception, net64: Inception) -> None:
    x = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # float32: the graph runs the model's own modules on the same input, so bit for bit.
        close(forward(build_graph(net, SHAPE), x).output, net(x), rtol=0, atol=0)
        x = x.double()
        result = forward(build_graph(net64, SHAPE), x)
        reference = net64.reference(x)
    assert list(result.activations) == list(reference)
    for name, value in reference.items():
        close64(result.activations[name], value, name)


@pytest.mark.parametrize("loss", LOSSES)
def test_input_activation_and_weight_gradients_equal_autograd(net64: Inception, loss: str) -> None:
    graph = build_graph(net64, SHAPE)
    x = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    result = backward(graph, x, target=4, loss=loss)

    twin = copy.deepcopy(net64)
    leaf = x.clone().requires_grad_(True)
    values = twin.reference(leaf)
    logits = values["fc"]
    value = {"logit": lambda: logits[0, 4], "cross_entropy": lambda: F.cross_entropy(logits, torch.tensor([4])),
             "mse": lambda: F.mse_loss(logits.softmax(1), F.one_hot(torch.tensor([4]), 7).double())}[loss]()
    params = {(layer, key): p for layer, m in twin.named_children() for key, p in m.named_parameters()}
    grads = torch.autograd.grad(value, [leaf, *values.values(), *params.values()])

    # A loss moves by ≤ 2× the logits' largest difference (its gradient's |·| sums to ≤ 2), plus a few roundings.
    assert abs(result.loss - value.item()) <= F64_BOUND * (2 * float(logits.detach().abs().max()) + 1)
    close64(result.input_gradient, grads[0], "input")
    for name, grad in zip(values, grads[1 : 1 + len(values)]):
        close64(result.activation_gradients[name], grad, name)
    expected = dict(zip(params, grads[1 + len(values) :]))
    assert {(layer, key) for layer, keys in result.parameter_gradients.items() for key in keys} == set(expected)
    for (layer, key), grad in expected.items():
        close64(result.parameter_gradients[layer][key], grad, f"{layer}.{key}")
