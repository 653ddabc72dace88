"""forward/backward: every recorded number equals plain PyTorch, and nothing is left behind."""

import copy
import threading
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from convscope.engine.graph import Graph, build_graph
from convscope.engine.probe import LOSSES, BackwardResult, backward, final_softmax, forward
from convscope.errors import InvalidRequest, NotFound
from tests.api.rebuild import plain_loss
from tests.nets import NAMES, make
from tests.tolerance import UNIT_ROUNDOFF, gamma

TEST_NETS = ["residual", "mixed", "inplace"]
close = torch.testing.assert_close


def same(actual: Any, expected: Any, msg: str | None = None) -> None:
    """Bit for bit: for the same modules, losses and autograd kernels on the same input, at the same thread
    count, nothing is summed in another order."""
    close(actual, expected, rtol=0, atol=0, msg=msg)


def hand_loss(logits: Tensor, target: int, loss: str) -> Tensor:
    """The three losses written out from their definitions."""
    if loss == "logit":
        return logits[0, target]
    probabilities = logits[0].exp() / logits[0].exp().sum()
    if loss == "mse":
        one_hot = torch.zeros_like(probabilities)
        one_hot[target] = 1.0
        return ((probabilities - one_hot) ** 2).sum() / logits.shape[1]
    return -probabilities[target].log()


def float32_loss_bound(logits: Tensor, target: int, loss: str) -> float:
    """How far a float32 loss can be from its float64 value on the same float32 logits [1, K]."""
    z = logits[0].double()
    k, zmax = z.numel(), float(z.abs().max())
    if loss == "logit":
        return 0.0  # the logit itself: no arithmetic
    # exp(z - max): the subtraction's rounding (≤ u·2·max|z|) becomes a relative error; exp, sum of K, divide
    rel = 2 * UNIT_ROUNDOFF * zmax + gamma(k + 2)
    if loss == "cross_entropy":  # log of a sum ≥ 1 makes rel absolute; 3 roundings of terms ≤ 2·max|z| + ce
        return rel + gamma(3) * (2 * zmax + float(hand_loss(z[None], target, loss)))
    # mse: Σ 2·|p - e|·rel·p ≤ 2·rel, then the K squares and their sum
    return (2 * rel + gamma(k + 1) * k * float(hand_loss(z[None], target, loss))) / k


def hooked(model: nn.Module, x: Tensor, target: int, loss: str) -> dict[str, Any]:
    """Module outputs caught by forward hooks on a deep copy, and their gradients by autograd.grad."""
    twin = copy.deepcopy(model)
    outputs: dict[str, Tensor] = {}

    def keep(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> Tensor:
            outputs.setdefault(name, output)  # first call of a module: the layer named by its path
            return output.clone()  # so that a later in-place op cannot overwrite what we keep

        return hook

    leaves = [(name, m) for name, m in twin.named_modules() if name and not list(m.children())]
    handles = [m.register_forward_hook(keep(name)) for name, m in leaves]
    try:
        x = x.clone().requires_grad_(True)
        logits = twin(x)
        value = plain_loss(logits, target, loss)  # PyTorch's own: the formulas are checked on their own below
        params = {(name, key): p for name, m in leaves for key, p in m.named_parameters(recurse=False)}
        grads = torch.autograd.grad(value, [x, *outputs.values(), *params.values()], allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    return {"logits": logits, "loss": value, "outputs": outputs, "input_gradient": grads[0],
            "gradients": dict(zip(outputs, grads[1 : 1 + len(outputs)])),
            "parameter_gradients": dict(zip(params, grads[1 + len(outputs) :]))}


def referenced(model: nn.Module, x: Tensor, target: int, loss: str) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every layer of a test net from its hand-written reference, and the loss's gradients for them."""
    twin = copy.deepcopy(model)
    values = twin.reference(x.clone())  # type: ignore[operator]
    value = plain_loss(values["out" if "out" in values else list(values)[-1]], target, loss)
    grads = torch.autograd.grad(value, list(values.values()))
    return values, dict(zip(values, grads))


def check_backward(result: BackwardResult, model: nn.Module, graph: Graph, x: Tensor, loss: str) -> None:
    ref = hooked(model, x, result.target, loss)
    same(result.output, ref["logits"].detach())
    assert result.loss == ref["loss"].item()  # the same code on the same input, as every comparison here
    same(result.input_gradient, ref["input_gradient"])
    module_layers = [layer for layer in graph.layers if layer.name == layer.module]
    assert module_layers
    for layer in module_layers:
        same(result.activations[layer.name], ref["outputs"][layer.name].detach())
        same(result.activation_gradients[layer.name], ref["gradients"][layer.name])
        for key, grad in result.parameter_gradients.get(layer.name, {}).items():
            same(grad, ref["parameter_gradients"][(layer.name, key)])
    with_params = {l.name for l in graph.layers if l.parameters}
    assert set(result.parameter_gradients) == with_params
    for name, grads in result.parameter_gradients.items():
        assert set(grads) == set(graph.layer(name).parameters)


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_the_model_and_forward_hooks(name: str) -> None:
    model, shape = make(name)
    graph = build_graph(model, shape)
    x = torch.randn(1, *shape)
    result = forward(graph, x)
    with torch.no_grad():
        same(result.output, model(x.clone()))
    assert list(result.activations) == [layer.name for layer in graph.layers]
    ref = hooked(model, x, 0, "logit")
    for layer in graph.layers:
        assert list(result.activations[layer.name].shape) == [1, *layer.output_shape]
        if layer.name == layer.module:
            same(result.activations[layer.name], ref["outputs"][layer.name].detach())
    for tensor in (result.output, *result.activations.values()):
        assert not tensor.requires_grad and tensor.grad_fn is None


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_independent_autograd(name: str, loss: str) -> None:
    model, shape = make(name)
    graph = build_graph(model, shape)
    x = torch.randn(1, *shape)
    result = backward(graph, x, target=3, loss=loss)
    assert result.target == 3
    check_backward(result, model, graph, x, loss)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", TEST_NETS)
def test_every_layer_of_test_nets_matches_hand_written_reference(name: str, loss: str) -> None:
    model, shape = make(name)
    graph = build_graph(model, shape)
    x = torch.randn(1, *shape)
    result = backward(graph, x, target=1, loss=loss)
    values, grads = referenced(model, x, 1, loss)
    assert list(values) == [layer.name for layer in graph.layers]
    for layer in graph.layers:
        same(result.activations[layer.name], values[layer.name].detach())
        same(result.activation_gradients[layer.name], grads[layer.name])
    same(forward(graph, x).activations, result.activations)


def test_losses_follow_their_formulas_numerically() -> None:
    model, shape = make("lenet")
    graph = build_graph(model, shape)
    x = torch.randn(1, *shape)
    output = forward(graph, x).output
    logits = output[0].double()  # float64 formulas on the float32 logits, each loss within its float32 bound
    probabilities = torch.softmax(logits, 0)
    expected_mse = sum(((p - (1.0 if k == 7 else 0.0)) ** 2).item() for k, p in enumerate(probabilities)) / 10
    assert abs(backward(graph, x, 7, "mse").loss - expected_mse) <= float32_loss_bound(output, 7, "mse")
    assert backward(graph, x, 7, "logit").loss == logits[7].item()  # the logit itself, from the same forward
    expected_ce = (torch.logsumexp(logits, 0) - logits[7]).item()
    ce_bound = float32_loss_bound(output, 7, "cross_entropy")
    assert abs(backward(graph, x, 7, "cross_entropy").loss - expected_ce) <= ce_bound
    # d logit_7 / d logits = one-hot, so the last layer's activation gradient is exactly e_7.
    one_hot = torch.zeros(1, 10)
    one_hot[0, 7] = 1.0
    same(backward(graph, x, 7, "logit").activation_gradients["fc3"], one_hot)


def test_target_defaults_to_the_predicted_class() -> None:
    model, shape = make("tinyvgg")
    graph = build_graph(model, shape)
    x = torch.randn(1, *shape)
    result = backward(graph, x)
    assert result.target == int(forward(graph, x).output.argmax())


def test_layers_narrow_what_is_recorded_in_execution_order() -> None:
    model, shape = make("residual")
    graph = build_graph(model, shape)
    x = torch.randn(1, *shape)
    assert list(forward(graph, x, layers=["fc", "add", "stem"]).activations) == ["stem", "add", "fc"]
    result = backward(graph, x, layers=["bn1", "relu_1"])
    assert list(result.activations) == list(result.activation_gradients) == ["bn1", "relu_1"]
    assert set(result.parameter_gradients) == {"bn1"}
    same(result.activation_gradients["bn1"], backward(graph, x).activation_gradients["bn1"])


def test_in_place_relu_leaves_the_recorded_conv_output_intact() -> None:
    model, shape = make("mixed")
    graph = build_graph(model, shape)
    x = torch.randn(1, *shape)
    plain = torch.nn.functional.conv2d(x, model.conv_a.weight, model.conv_a.bias, padding=1).detach()
    for result in (forward(graph, x), backward(graph, x)):
        conv = result.activations["conv_a"]
        assert (conv < 0).any()
        same(conv, plain)  # F.conv2d is what nn.Conv2d calls
        same(result.activations["act_a"], plain.relu())


class MutatesItsInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.relu_().flatten(1))


def test_callers_input_is_never_mutated() -> None:
    torch.manual_seed(0)  # not whatever another test left in the global RNG
    graph = build_graph(MutatesItsInput().eval(), [1, 4, 4])
    x = torch.randn(1, 1, 4, 4)
    before = x.clone()
    forward(graph, x)
    result = backward(graph, x, target=0, loss="logit")
    assert torch.equal(x, before) and x.grad is None and not x.requires_grad
    same(result.input_gradient, torch.autograd.functional.jacobian(
        lambda t: graph.module.fc(t.relu().flatten(1))[0, 0], before))


def no_leftovers(model: nn.Module) -> None:
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks and not module._backward_pre_hooks
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_probing_leaves_no_hooks_no_grads_and_the_mode_alone(mode: str) -> None:
    model, shape = make("residual")
    model.train(mode == "train")
    modes = [m.training for m in model.modules()]
    graph = build_graph(model, shape)
    x = torch.randn(1, *shape)
    forward(graph, x)
    for loss in LOSSES:
        backward(graph, x, loss=loss)
    for module in (model, graph.module):
        no_leftovers(module)
    assert [m.training for m in model.modules()] == modes
    assert not any(m.training for m in graph.module.modules())


def test_concurrent_calls_on_one_graph_match_sequential_calls() -> None:
    model, shape = make("residual")
    graph = build_graph(model, shape)
    inputs = [torch.randn(1, *shape, generator=torch.Generator().manual_seed(i)) for i in range(40)]

    def run(i: int) -> Any:
        if i % 2:
            return forward(graph, inputs[i]).activations
        r = backward(graph, inputs[i], target=i % 10, loss=LOSSES[i % 3])
        return r.loss, r.input_gradient, r.activation_gradients, r.parameter_gradients

    expected = [run(i) for i in range(len(inputs))]
    got: dict[int, Any] = {}

    def worker(t: int) -> None:
        for i in range(t, len(inputs), 8):
            got[i] = run(i)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(len(inputs)))
    for i in range(len(inputs)):
        same(got[i], expected[i])
    no_leftovers(graph.module)


@pytest.fixture(scope="module")
def lenet() -> Graph:
    model, shape = make("lenet")
    return build_graph(model, shape)


@pytest.mark.parametrize("bad, sentence", [
    (torch.zeros(1, 3, 28, 28), "The input has shape [1, 3, 28, 28], but this model takes [1, 1, 28, 28]"),
    (torch.zeros(1, 28, 28), "The input has shape [1, 28, 28]"),
    (torch.zeros(2, 1, 28, 28), "The input has shape [2, 1, 28, 28]"),
    (torch.full((1, 1, 28, 28), float("nan")), "The input contains NaN or infinite values"),
    (torch.full((1, 1, 28, 28), float("inf")), "The input contains NaN or infinite values"),
    (torch.zeros(1, 1, 28, 28, dtype=torch.int64), "The input must hold floating-point numbers"),
])
def test_bad_inputs_are_rejected_with_a_sentence(lenet: Graph, bad: Tensor, sentence: str) -> None:
    for call in (forward, backward):
        with pytest.raises(InvalidRequest) as info:
            call(lenet, bad)
        assert info.value.detail.startswith(sentence) and info.value.status_code == 422


def test_bad_target_loss_and_layer_are_rejected(lenet: Graph) -> None:
    x = torch.zeros(1, 1, 28, 28)
    for target in (99, -1, 10):
        with pytest.raises(InvalidRequest, match=f"from 0 to 9; got {target}"):
            backward(lenet, x, target=target)
    for bad in (1.5, True, "3", torch.tensor(2.0)):
        with pytest.raises(InvalidRequest, match="The target must be a class index"):
            backward(lenet, x, target=bad)  # type: ignore[arg-type]
    assert backward(lenet, x, target=np.int64(4)).target == 4
    with pytest.raises(InvalidRequest) as info:
        backward(lenet, x, loss="hinge")
    assert info.value.detail == "There is no loss called 'hinge'; choose one of: cross_entropy, mse, logit."
    for call in (forward, backward):
        with pytest.raises(NotFound) as missing:
            call(lenet, x, layers=["conv1", "conv9"])
        assert missing.value.detail.startswith("This model has no layer called 'conv9'. Its layers are: conv1")


class SharedAndIdentity(nn.Module):
    """An identity layer whose input is also read elsewhere, and a parameter used by a function."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.same = nn.Identity()
        self.scale = nn.Parameter(torch.tensor([1.5]))
        self.fc = nn.Linear(2 * 2 * 2, 4)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        z = self.same(y) * self.scale
        return self.fc((z + y).flatten(1))


def test_identity_layers_and_functional_parameters_get_their_own_gradients() -> None:
    torch.manual_seed(0)  # not whatever another test left in the global RNG
    model = SharedAndIdentity().eval()
    graph = build_graph(model, [1, 4, 4])
    x = torch.randn(1, 1, 4, 4)
    result = backward(graph, x, target=2, loss="logit")
    assert graph.layer("mul").parameters == {"b": [1]}
    twin = copy.deepcopy(model)
    y = twin.conv(x)
    z_in = y * 1  # the identity's output as a tensor of its own
    logit = twin.fc((z_in * twin.scale + y).flatten(1))[0, 2]
    d_y, d_same, d_scale = torch.autograd.grad(logit, [y, z_in, twin.scale])
    same(result.activation_gradients["same"], d_same)
    same(result.activation_gradients["conv"], d_y)  # through both the identity and the add
    same(result.parameter_gradients["mul"]["b"], d_scale)


class EndsInSoftmax(nn.Module):
    """A network whose forward returns probabilities: its last layer is a softmax over the classes."""

    def __init__(self, body: nn.Module, how: str) -> None:
        super().__init__()
        self.body = body
        self.how = how
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        z: Tensor = self.body(x)
        if self.how == "module":
            out: Tensor = self.softmax(z)
            return out
        if self.how == "method":
            return z.softmax(-1)
        return torch.nn.functional.softmax(z, dim=1)


@pytest.mark.parametrize("how", ["module", "function", "method"])
def test_a_final_softmax_is_not_applied_twice_and_losses_read_the_real_logits(how: str) -> None:
    body, shape = make("lenet")
    graph = build_graph(EndsInSoftmax(body, how).eval(), shape)
    plain = build_graph(body, shape)
    assert graph.layers[-1].type == "softmax" and final_softmax(graph) == graph.layers[-1].name
    assert final_softmax(plain) is None
    x = torch.randn(1, *shape)
    with torch.no_grad():
        z = body(x.clone())
    for result in (forward(graph, x, layers=["body.conv1"]), backward(graph, x, layers=["body.conv1"])):
        same(result.logits, z)  # the softmax's input, recorded although only conv1 was asked for
        same(result.probabilities, z.softmax(1))
        same(result.output, result.probabilities)
        assert list(result.activations) == ["body.conv1"]
    unwrapped = forward(plain, x)
    same(unwrapped.logits, unwrapped.output)
    same(unwrapped.probabilities, z.softmax(1))

    last = graph.layers[-1].name
    for loss in LOSSES:
        ours, reference = backward(graph, x, 3, loss), backward(plain, x, 3, loss)
        assert ours.loss == reference.loss  # on the logits, not a 2nd softmax: the same code on the same logits
        assert abs(ours.loss - hand_loss(z.double(), 3, loss).item()) <= float32_loss_bound(z, 3, loss)
        same(ours.input_gradient, reference.input_gradient)
        for layer in plain.layers:
            same(ours.activation_gradients[f"body.{layer.name}"], reference.activation_gradients[layer.name])
            for key, grad in reference.parameter_gradients.get(layer.name, {}).items():
                same(ours.parameter_gradients[f"body.{layer.name}"][key], grad)
        if loss == "mse":  # mse reads the model's own probabilities: d/dp of mean((p - e_3)^2)
            p = z.softmax(1)
            target = torch.zeros_like(p)
            target[0, 3] = 1.0
            # autograd rounds 1/K, ·2 and ·(p - e); this divides once: ≤ 4 roundings apart, relative
            close(ours.activation_gradients[last], 2 * (p - target) / p.shape[1], rtol=gamma(4), atol=0)
        else:  # cross_entropy and logit do not pass through the final softmax
            assert torch.equal(ours.activation_gradients[last], torch.zeros_like(z))


def test_a_softmax_over_another_dimension_is_not_taken_for_the_head() -> None:
    class BatchSoftmax(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: Tensor) -> Tensor:
            return torch.softmax(self.fc(x.flatten(1)), 0)  # over the batch: all ones for one image

    torch.manual_seed(0)  # not whatever another test left in the global RNG
    graph = build_graph(BatchSoftmax().eval(), [1, 2, 2])
    assert graph.layers[-1].type == "softmax" and final_softmax(graph) is None
    result = forward(graph, torch.randn(1, 1, 2, 2))
    same(result.logits, result.output)
