"""build_graph: layer names, types, wiring, shapes, attributes and weights of any traceable model."""

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convscope.engine.graph import Graph, Layer, build_graph
from convscope.errors import InvalidRequest, NotFound, UntraceableModel
from convscope.models.lenet import LeNet
from tests.nets import NAMES, make


def graph_of(name: str) -> Graph:
    model, shape = make(name)
    return build_graph(model, shape)


def by_name(graph: Graph) -> dict[str, Layer]:
    return {layer.name: layer for layer in graph.layers}


def test_lenet_layers_are_named_typed_and_chained() -> None:
    graph = graph_of("lenet")
    assert [(l.name, l.type) for l in graph.layers] == [
        ("conv1", "conv2d"), ("act1", "relu"), ("pool1", "max_pool2d"), ("conv2", "conv2d"),
        ("act2", "relu"), ("pool2", "max_pool2d"), ("flatten", "flatten"), ("fc1", "linear"),
        ("act3", "relu"), ("fc2", "linear"), ("act4", "relu"), ("fc3", "linear"),
    ]
    assert graph.input_shape == [1, 28, 28]
    assert graph.layers[0].inputs == ["input"]
    for before, after in zip(graph.layers, graph.layers[1:]):
        assert after.inputs == [before.name]
    layers = by_name(graph)
    assert layers["conv1"].output_shape == [6, 28, 28]
    assert layers["pool2"].output_shape == [16, 5, 5]
    assert layers["flatten"].output_shape == [400]
    assert layers["fc3"].output_shape == [10]
    assert layers["conv1"].attributes == {
        "in_channels": 1, "out_channels": 6, "kernel_size": [5, 5], "stride": [1, 1],
        "padding": [2, 2], "dilation": [1, 1], "groups": 1, "padding_mode": "zeros"}
    assert layers["pool1"].attributes == {
        "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1], "ceil_mode": False}
    assert layers["fc1"].attributes == {"in_features": 400, "out_features": 120}
    assert layers["flatten"].attributes == {"start_dim": 1, "end_dim": -1}
    assert layers["conv1"].parameters == {"weight": [6, 1, 5, 5], "bias": [6]}
    assert layers["act1"].parameters == {} and layers["act1"].buffers == {}
    assert layers["fc2"].module == "fc2"


def test_residual_net_shows_its_real_dag() -> None:
    layers = by_name(graph_of("residual"))
    assert list(layers) == ["stem", "conv1", "bn1", "relu", "conv2", "bn2", "add", "relu_1",
                            "adaptive_avg_pool2d", "flatten", "fc"]
    assert layers["stem"].inputs == ["input"]
    assert layers["add"].type == "add" and layers["add"].inputs == ["bn2", "stem"]
    assert layers["relu"].type == "relu" and layers["relu"].module is None
    assert layers["relu_1"].inputs == ["add"]
    assert layers["bn1"].type == "batch_norm2d"
    assert layers["bn1"].attributes == {"num_features": 8, "eps": 1e-05, "momentum": 0.1,
                                        "affine": True, "track_running_stats": True}
    assert layers["bn1"].parameters == {"weight": [8], "bias": [8]}
    assert layers["bn1"].buffers == {"running_mean": [8], "running_var": [8]}  # no num_batches_tracked
    assert layers["conv1"].parameters == {"weight": [8, 8, 3, 3]}  # bias=False
    assert layers["adaptive_avg_pool2d"].attributes == {"output_size": [1, 1]}
    assert layers["adaptive_avg_pool2d"].output_shape == [8, 1, 1]
    assert layers["flatten"].type == "flatten" and layers["flatten"].output_shape == [8]


def test_torchvision_style_resnet_gets_qualified_names_and_real_adds() -> None:
    layers = by_name(graph_of("resnet"))
    assert layers["layer1.0.conv1"].inputs == ["maxpool"]
    assert layers["add"].inputs == ["layer1.0.bn2", "maxpool"]  # `out += identity`
    assert layers["layer1_0_relu_1"].module == "layer1.0.relu"  # the block's ReLU, second call
    assert layers["layer1.1.downsample.0"].inputs == ["layer1_0_relu_1"]
    assert layers["add_1"].inputs == ["layer1.1.bn2", "layer1.1.downsample.1"]
    assert layers["layer1.1.downsample.0"].attributes["stride"] == [2, 2]
    assert layers["maxpool"].attributes == {
        "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "ceil_mode": False}
    assert layers["avgpool"].type == "adaptive_avg_pool2d" and layers["avgpool"].output_shape == [16, 1, 1]


def test_every_layer_knows_the_modules_it_was_called_in() -> None:
    layers = by_name(graph_of("resnet"))
    block = (("layer1", "Sequential"), ("layer1.0", "BasicBlock"))
    assert layers["conv1"].scope == () and layers["fc"].scope == ()
    assert layers["layer1.0.conv1"].scope == block  # its own module left out
    assert layers["add"].scope == block and layers["add"].module is None  # `out += identity` in the block's forward
    assert layers["layer1_0_relu_1"].scope == block
    assert layers["layer1.1.downsample.0"].scope == (("layer1", "Sequential"), ("layer1.1", "BasicBlock"),
                                                     ("layer1.1.downsample", "Sequential"))


def test_functional_calls_get_types_and_pytorch_attributes() -> None:
    layers = by_name(graph_of("mixed"))
    assert layers["cat"].type == "cat" and layers["cat"].inputs == ["act_a", "act_b"]
    assert layers["cat"].attributes == {"dim": 1} and layers["cat"].output_shape == [8, 12, 12]
    assert layers["conv_b"].inputs == ["input"]
    assert layers["grouped"].attributes == {
        "in_channels": 8, "out_channels": 8, "kernel_size": [3, 3], "stride": [2, 2],
        "padding": [2, 2], "dilation": [2, 2], "groups": 2, "padding_mode": "zeros"}
    assert layers["grouped"].parameters == {"weight": [8, 4, 3, 3], "bias": [8]}
    assert layers["max_pool2d"].type == "max_pool2d" and layers["max_pool2d"].module is None
    assert layers["max_pool2d"].attributes["kernel_size"] == [2, 2]
    assert layers["max_pool2d"].attributes["stride"] == [2, 2]  # defaults to the kernel size
    assert layers["leaky_relu"].attributes == {"negative_slope": 0.2}
    assert layers["leaky"].type == "leaky_relu" and layers["leaky"].attributes == {"negative_slope": 0.1}
    assert layers["view"].type == "flatten" and layers["view"].output_shape == [72]
    assert layers["view"].attributes == {"start_dim": 1, "end_dim": -1}
    assert layers["view"].inputs == ["leaky_relu"]  # x.size(0) is not a layer, nor an input
    assert (layers["act_b"].type, layers["gate"].type) == ("tanh", "sigmoid")
    assert layers["act_a"].type == "relu" and layers["act_a"].attributes == {}


def test_module_called_twice_gets_fx_name_and_in_place_reads_are_rewired() -> None:
    layers = by_name(graph_of("inplace"))
    assert layers["relu"].module == "relu" and layers["relu_2"].module == "relu"
    assert layers["relu_2"].inputs == ["sub_1"]
    # `y + z` after F.relu(y, inplace=True) reads the rectified y: both inputs are the relu.
    assert layers["add"].inputs == ["relu_1", "relu_1"]
    assert layers["relu_"].type == "relu" and layers["relu_"].inputs == ["sub"]
    assert layers["avg_pool2d"].attributes == {
        "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "ceil_mode": False,
        "count_include_pad": True, "divisor_override": None}


class Assorted(nn.Module):
    """Method calls, constants, misleading names and modules outside the vocabulary."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.Tanh()  # named relu, is a tanh
        self.stem = nn.Conv2d(2, 4, 3)
        self.conv1 = nn.Conv2d(4, 4, 1)
        self.conv1_1 = nn.Conv2d(4, 4, 1)
        self.gelu = nn.GELU()
        self.clip = nn.ReLU6()
        self.scale = nn.Parameter(torch.ones(1))
        self.head = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x).relu()
        x = self.conv1_1(self.conv1(self.conv1(x)))  # conv1's second call has fx name "conv1_1"
        x = self.clip(self.gelu(self.relu(x))) * self.scale
        x = torch.add(x, x.mean(), alpha=2)
        return self.head(x.flatten(1)).softmax(1)


def test_method_calls_constants_and_names_never_decide_types() -> None:
    graph = build_graph(Assorted().eval(), [2, 6, 6])
    layers = by_name(graph)
    assert [(l.name, l.type) for l in graph.layers] == [
        ("stem", "conv2d"), ("relu_1", "relu"), ("conv1", "conv2d"), ("conv1_1_1", "conv2d"),
        ("conv1_1", "conv2d"), ("relu", "tanh"), ("gelu", "gelu"), ("clip", "relu6"), ("mul", "mul"),
        ("mean", "mean"), ("add", "add"), ("flatten", "flatten"), ("head", "linear"), ("softmax", "softmax")]
    # The x.relu() method is fx node "relu", but the module at path "relu" owns that name.
    assert layers["relu_1"].module is None and layers["relu"].module == "relu"
    assert len(set(layers)) == len(graph.layers)
    assert layers["conv1_1_1"].module == "conv1" and layers["conv1_1_1"].inputs == ["conv1"]
    assert layers["conv1_1"].inputs == ["conv1_1_1"]
    assert layers["mul"].inputs == ["clip"]  # the parameter (a get_attr node) is not a layer
    assert layers["mul"].parameters == {"b": [1]} and layers["mul"].module is None
    assert layers["add"].inputs == ["mul", "mean"] and layers["add"].attributes == {"alpha": 2}
    assert layers["mean"].output_shape == []
    assert layers["gelu"].attributes == {"approximate": "none"}
    assert layers["flatten"].attributes == {"start_dim": 1, "end_dim": -1}
    assert layers["softmax"].attributes == {"dim": 1}


def test_train_mode_model_is_copied_and_left_in_train_mode() -> None:
    model, shape = make("residual")
    model.train()
    graph = build_graph(model, shape)
    assert model.training and all(m.training for m in model.modules())
    assert not any(m.training for m in graph.module.modules())
    assert graph.module.get_parameter("stem.weight") is not model.stem.weight
    assert torch.equal(graph.module.get_buffer("bn1.running_mean"), model.bn1.running_mean)


def test_a_layer_is_found_by_name_or_reported_missing() -> None:
    graph = graph_of("lenet")
    assert graph.layer("fc2").type == "linear"
    with pytest.raises(NotFound) as info:
        graph.layer("conv9")
    assert info.value.detail.startswith("This model has no layer called 'conv9'. Its layers are: conv1, act1,")
    assert info.value.status_code == 404


class FunctionalNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("var", torch.ones(3))
        self.gamma = nn.Parameter(torch.ones(3))
        self.fc = nn.Linear(12, 2)

    def forward(self, x: Tensor) -> Tensor:
        x = F.batch_norm(self.conv(x), self.mean, self.var, self.gamma, None, False, 0.1, 1e-3)
        return self.fc(x.flatten(1))


def test_functional_batch_norm_on_feature_maps_is_batch_norm2d() -> None:
    layers = by_name(build_graph(FunctionalNorm(), [1, 4, 4]))
    norm = layers["batch_norm"]
    assert norm.type == "batch_norm2d" and norm.module is None and norm.inputs == ["conv"]
    assert norm.attributes == {
        "num_features": 3, "eps": 1e-3, "momentum": 0.1, "affine": True, "track_running_stats": True}
    assert norm.parameters == {"weight": [3]} and norm.buffers == {"running_mean": [3], "running_var": [3]}


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:
            x = -x
        return self.fc(x.flatten(1))


def test_data_dependent_control_flow_is_untraceable_with_file_and_line() -> None:
    lines = Path(__file__).read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip() == "if x.sum() > 0:")
    with pytest.raises(UntraceableModel) as info:
        build_graph(Branchy(), [1, 2, 2])
    detail = info.value.detail
    assert "Branchy" in detail and "control flow" in detail
    assert f"test_graph.py:{line}" in detail and "`if x.sum() > 0:`" in detail
    assert info.value.status_code == 422


def test_model_that_cannot_take_the_input_shape_is_rejected() -> None:
    with pytest.raises(InvalidRequest) as info:
        build_graph(LeNet(), [3, 28, 28])
    assert info.value.detail.startswith("LeNet cannot run on an input of shape [3, 28, 28]")
    with pytest.raises(InvalidRequest):
        build_graph(LeNet(), [28, 28])


def rerun(layers: list[Layer], state: dict[str, Tensor], x: Tensor) -> Tensor:
    """A tiny interpreter that knows only the Layer list and the weights."""
    values: dict[str, Tensor] = {"input": x}
    for layer in layers:
        args = [values[name] for name in layer.inputs]
        a: dict[str, Any] = layer.attributes
        w = {k: state[f"{layer.module}.{k}"] for k in (*layer.parameters, *layer.buffers)}
        match layer.type:
            case "conv2d":
                out = F.conv2d(args[0], w["weight"], w.get("bias"), a["stride"], a["padding"], a["dilation"], a["groups"])
            case "linear":
                out = F.linear(args[0], w["weight"], w.get("bias"))
            case "batch_norm2d":
                out = F.batch_norm(args[0], w["running_mean"], w["running_var"], w["weight"], w["bias"], False, 0.0, a["eps"])
            case "max_pool2d":
                out = F.max_pool2d(args[0], a["kernel_size"], a["stride"], a["padding"], a["dilation"], a["ceil_mode"])
            case "avg_pool2d":
                out = F.avg_pool2d(args[0], a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"], a["count_include_pad"])
            case "adaptive_avg_pool2d":
                out = F.adaptive_avg_pool2d(args[0], a["output_size"])
            case "flatten":
                out = torch.flatten(args[0], a["start_dim"], a["end_dim"])
            case "relu" | "sigmoid" | "tanh":
                out = getattr(torch, layer.type)(args[0])
            case "leaky_relu":
                out = F.leaky_relu(args[0], a["negative_slope"])
            case "cat":
                out = torch.cat(args, a["dim"])
            case "add" | "sub" | "mul":
                other = args[1] if len(args) > 1 else a["b"]
                out = getattr(torch, layer.type)(args[0], other)
            case _:
                raise AssertionError(f"unexpected layer type {layer.type}")
        values[layer.name] = out
    return values[layers[-1].name]


@pytest.mark.parametrize("name", NAMES)
def test_model_reruns_from_layer_list_and_state_dict_alone(name: str) -> None:
    model, shape = make(name)
    graph = build_graph(model, shape)
    x = torch.randn(1, *shape)
    with torch.no_grad():
        expected = model(x.clone())
        got = rerun(graph.layers, model.state_dict(), x)
    # Bit for bit: the functional calls are the ones the modules make, on the same values in the same order.
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


class TwoInputs(nn.Module):
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x + y


class Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)  # a feature map, not class scores


def test_models_without_one_input_and_one_score_vector_are_rejected() -> None:
    with pytest.raises(UntraceableModel, match=r"^TwoInputs.forward takes 2 inputs"):
        build_graph(TwoInputs(), [1, 4, 4])
    with pytest.raises(InvalidRequest) as info:
        build_graph(Features(), [1, 4, 4])
    assert info.value.detail == "Features must return one tensor of class scores shaped [1, K]; it returned [1, 2, 2, 2]."
