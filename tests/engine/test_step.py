"""take_step: one update equals a fresh torch.optim optimizer on a fresh eager copy of the model, and
the shared model is never touched."""

import copy
import importlib
import json
import threading
from collections.abc import Callable
from functools import cache
from typing import Any, get_args

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from convscope.config import Settings
from convscope.engine.graph import Graph, build_graph
from convscope.engine.probe import LOSSES, backward
from convscope.engine.step import MAX_LR, StepResult, take_step
from convscope.errors import InvalidRequest, NotFound
from convscope.imaging import InputSpec, load_image
from convscope.optimizers import OPTIMIZERS
from convscope.registry import load_card
from convscope.schemas import Optimizer, StepRequest
from tests import ROOT
from tests.api.rebuild import MODELS, plain_loss
from tests.nets import make
from tests.tolerance import UNIT_ROUNDOFF, gamma

# The optimizers as PyTorch builds them with its own defaults (besides momentum's 0.9).
TORCH_OPTIMIZERS: dict[str, Callable[[list[nn.Parameter], float], torch.optim.Optimizer]] = {
    "sgd": lambda ps, lr: torch.optim.SGD(ps, lr=lr),
    "momentum": lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9),
    "adam": lambda ps, lr: torch.optim.Adam(ps, lr=lr),
    "rmsprop": lambda ps, lr: torch.optim.RMSprop(ps, lr=lr),
    "adagrad": lambda ps, lr: torch.optim.Adagrad(ps, lr=lr),
}


def card(model_id: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((ROOT / "models" / f"{model_id}.json").read_text())
    return found


def fresh_model(model_id: str) -> nn.Module:
    """A new eager instance of a built-in model from its card's factory and its safetensors weights."""
    arch = card(model_id)["architecture"]
    module_name, _, attr = arch["factory"].partition(":")
    model: nn.Module = getattr(importlib.import_module(module_name), attr)(**arch.get("kwargs", {}))
    model.load_state_dict(load_file(ROOT / "models" / card(model_id)["weights"]))
    return model.eval()


def sample_input(model_id: str, index: int = 0) -> Tensor:
    """A shipped sample as the model consumes it, [1, C, H, W]."""
    meta = card(model_id)
    return load_image((ROOT / "models" / meta["samples"][index]["file"]).read_bytes(),
                      InputSpec.from_card(meta["input"]), Settings())


def torch_step(model: nn.Module, x: Tensor, target: int | None, loss: str, optimizer: str, lr: float,
               layers: list[str]) -> dict[str, Any]:
    """Plain PyTorch: loss.backward() on the model, one step of a new optimizer over the parameters
    of the modules `layers`, and the loss again. Mutates `model` (a fresh copy)."""
    logits = model(x)
    chosen = int(logits.argmax(1)) if target is None else target
    value = plain_loss(logits, chosen, loss)
    params = {(name, key): p for name in layers for key, p in model.get_submodule(name).named_parameters()}
    value.backward()  # type: ignore[no-untyped-call]  # unannotated in torch
    before = {k: p.detach().clone() for k, p in params.items()}
    grads = {k: p.grad.clone() for k, p in params.items() if p.grad is not None}
    TORCH_OPTIMIZERS[optimizer](list(params.values()), lr).step()
    with torch.no_grad():
        logits_after = model(x)
    return {"target": chosen, "loss": value.item(), "before": before, "gradient": grads,
            "after": {k: p.detach().clone() for k, p in params.items()}, "logits_after": logits_after,
            "loss_after": plain_loss(logits_after, chosen, loss).item()}


@cache
def graph(model_id: str) -> Graph:
    return load_card(ROOT / "models" / f"{model_id}.json").graph


def with_parameters(g: Graph) -> list[str]:
    return [layer.name for layer in g.layers if layer.parameters]


def check_against_torch(result: StepResult, ref: dict[str, Any], names: list[str]) -> None:
    """Bit for bit throughout: the step runs the same modules, losses, autograd kernels and torch.optim
    code on the same float32 input, at the same thread count, so nothing can be summed in another order."""
    assert result.target == ref["target"]
    assert result.loss == ref["loss"] and result.loss_after == ref["loss_after"]
    torch.testing.assert_close(result.after.logits, ref["logits_after"], atol=0, rtol=0)
    assert list(result.layers) == names
    assert {(n, k) for n, group in result.layers.items() for k in group} == set(ref["after"])
    for (name, key), after in ref["after"].items():
        got = result.layers[name][key]
        what = f"{name}.{key}"
        torch.testing.assert_close(got.before, ref["before"][(name, key)], atol=0, rtol=0, msg=what)
        torch.testing.assert_close(got.gradient, ref["gradient"][(name, key)], atol=0, rtol=0, msg=what)
        torch.testing.assert_close(got.after, after, atol=0, rtol=0, msg=what)
        torch.testing.assert_close(got.update, after - ref["before"][(name, key)], atol=0, rtol=0, msg=what)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("model_id", MODELS)
def test_every_optimizer_equals_a_fresh_torch_optimizer_on_a_fresh_copy(model_id: str, optimizer: str) -> None:
    g, x = graph(model_id), sample_input(model_id)
    predicted = int(fresh_model(model_id)(x).argmax())
    other = (predicted + 3) % 10
    for target, lr in ((None, None), (other, None), (other, 0.05)):
        result = take_step(g, x, target, "cross_entropy", optimizer, lr)
        rate = OPTIMIZERS[optimizer].step_lr if lr is None else lr
        assert (result.optimizer, result.lr) == (optimizer, rate)
        ref = torch_step(fresh_model(model_id), x, target, "cross_entropy", optimizer, rate, with_parameters(g))
        check_against_torch(result, ref, with_parameters(g))
        if target is not None and lr is None:
            assert result.loss_after < result.loss  # the default rates step downhill


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model_id", MODELS)
def test_every_loss_equals_torch_on_one_chosen_layer(model_id: str, loss: str) -> None:
    g, x = graph(model_id), sample_input(model_id, 1)
    layer = with_parameters(g)[1]
    result = take_step(g, x, 2, loss, "sgd", 0.1, [layer])
    check_against_torch(result, torch_step(fresh_model(model_id), x, 2, loss, "sgd", 0.1, [layer]), [layer])


def test_layers_are_stepped_in_execution_order_whatever_order_they_are_named_in() -> None:
    g, x = graph("mnist-lenet"), sample_input("mnist-lenet")
    names = with_parameters(g)
    result = take_step(g, x, layers=[names[-1], names[0], names[0]])
    assert list(result.layers) == [names[0], names[-1]]
    assert list(result.layers[names[0]]) == list(g.layer(names[0]).parameters)  # weight, then bias


def test_first_steps_of_a_fresh_optimizer_are_as_documented() -> None:
    """Momentum's first step is SGD's; Adam's and Adagrad's are lr·sign(g), RMSprop's 10·lr·sign(g)."""
    g, x = graph("fashion-tinyvgg"), sample_input("fashion-tinyvgg")
    sgd = take_step(g, x, 4, optimizer="sgd", lr=0.01)
    momentum = take_step(g, x, 4, optimizer="momentum", lr=0.01)
    for name, group in sgd.layers.items():
        for key, step in group.items():
            assert torch.equal(step.after, momentum.layers[name][key].after), f"{name}.{key}"
    # The first step is lr·g / (c·|g| + eps), c = 1 (Adam, Adagrad) or √(1 - alpha) = 0.1 (RMSprop).
    for optimizer, scale in (("adam", 1.0), ("adagrad", 1.0), ("rmsprop", 10.0)):
        lr, eps = 0.001, OPTIMIZERS[optimizer].settings["eps"]
        result = take_step(g, x, 4, optimizer=optimizer, lr=lr)
        for name, group in result.layers.items():
            for key, step in group.items():
                big = step.gradient.abs() > 1e-4  # where eps is negligible beside |g|
                g_big, after = step.gradient[big].double(), step.after[big].double()
                # eps shrinks the step by eps/(c·|g|); the optimizer rounds ~8 times; after - before is exact
                # (Sterbenz) but after = before + step is rounded once, by at most u·|after|.
                bound = lr * scale * (scale * eps / g_big.abs() + gamma(8)) + UNIT_ROUNDOFF * after.abs()
                excess = (step.update[big].double() + lr * scale * g_big.sign()).abs() - bound
                assert not (excess > 0).any(), f"{optimizer} {name}.{key}: {float(excess.max()):.3g} too far"


class TiedNet(nn.Module):
    """One linear module called twice: two layers, one weight, one gradient, one update."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.tied = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.conv(x), 1)  # [1, 2, 2, 2] -> [1, 8]
        out: Tensor = self.head(self.tied(torch.relu(self.tied(x))))
        return out


class Scaled(nn.Module):
    """Nested modules, and a parameter that a function uses rather than a module (an fx get_attr)."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
        self.scale = nn.Parameter(torch.tensor([1.5]))
        self.fc = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(torch.flatten(self.block(x) * self.scale, 1))
        return out


def small_net(name: str) -> tuple[nn.Module, list[int]]:
    torch.manual_seed(0)
    if name == "tied":
        return TiedNet().eval(), [1, 4, 4]
    if name == "scaled":
        return Scaled().eval(), [1, 4, 4]
    return make(name)


@pytest.mark.parametrize("name", ["tied", "scaled", "resnet", "mixed"])
def test_nested_shared_and_functional_parameters_step_as_in_torch(name: str) -> None:
    """A parameter two layers share is one tensor, stepped once with its whole gradient."""
    model, shape = small_net(name)
    g = build_graph(model, shape)
    x = torch.randn(1, *shape)
    compiled = len(torch.fx.graph_module._loader.eval_cache)
    for optimizer in OPTIMIZERS:
        result = take_step(g, x, 1, "cross_entropy", optimizer, 0.1)
        # "" names the whole model: every parameter, keyed by its path.
        ref = torch_step(copy.deepcopy(model), x, 1, "cross_entropy", optimizer, 0.1, [""])
        assert result.loss_after == ref["loss_after"]  # the same code on the same input: bit for bit, as below
        assert list(result.layers) == with_parameters(g)
        for layer, group in result.layers.items():
            for key, step in group.items():
                path, what = g.parameter_paths[layer][key], f"{layer}.{key}"
                torch.testing.assert_close(step.gradient, ref["gradient"][("", path)], atol=0, rtol=0, msg=what)
                torch.testing.assert_close(step.after, ref["after"][("", path)], atol=0, rtol=0, msg=what)
    # No GraphModule was built for a step: torch.fx would keep its compiled source forever.
    assert len(torch.fx.graph_module._loader.eval_cache) == compiled
    if name == "tied":
        assert with_parameters(g) == ["conv", "tied", "tied_1", "head"]
    if name == "scaled":
        assert g.layer("mul").parameters == {"b": [1]}


def shared_state(g: Graph) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in g.module.state_dict().items()}


def test_the_shared_model_is_never_touched() -> None:
    g, x = graph("mnist-lenet"), sample_input("mnist-lenet")
    before, objects = shared_state(g), {k: id(p) for k, p in g.module.named_parameters()}
    for optimizer in OPTIMIZERS:
        result = take_step(g, x, 5, "mse", optimizer, 1.0)
        assert any(not torch.equal(s.before, s.after) for group in result.layers.values() for s in group.values())
    after = shared_state(g)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "a shared weight changed"
    assert {k: id(p) for k, p in g.module.named_parameters()} == objects
    assert all(p.grad is None and p.requires_grad for p in g.module.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in g.module.modules())
    # What backward reports is unchanged by the steps taken in between.
    again = backward(g, x, 5, "mse")
    assert torch.equal(again.output, take_step(g, x, 5, "mse").before.output)


def test_concurrent_steps_on_one_graph_match_sequential_steps() -> None:
    g, x = graph("mnist-lenet"), sample_input("mnist-lenet")
    jobs = [(optimizer, target) for optimizer in OPTIMIZERS for target in (0, 7)]
    alone = {job: take_step(g, x, job[1], optimizer=job[0], lr=0.5) for job in jobs}
    together: dict[tuple[str, int], StepResult] = {}
    errors: list[BaseException] = []

    def worker(job: tuple[str, int]) -> None:
        try:
            together[job] = take_step(g, x, job[1], optimizer=job[0], lr=0.5)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for job, result in alone.items():
        assert together[job].loss_after == result.loss_after, job
        for name, group in result.layers.items():
            for key, step in group.items():
                assert torch.equal(together[job].layers[name][key].after, step.after), (job, name, key)


@pytest.mark.parametrize(("options", "error", "words"), [
    ({"optimizer": "lbfgs"}, InvalidRequest, "'optimizer': there is no optimizer called 'lbfgs'; choose one of: "
                                             "sgd, momentum, adam, rmsprop, adagrad"),
    ({"lr": 0.0}, InvalidRequest, "'lr'"),
    ({"lr": -0.1}, InvalidRequest, "greater than 0"),
    ({"lr": float("nan")}, InvalidRequest, "'lr'"),
    ({"lr": float("inf")}, InvalidRequest, "'lr'"),
    ({"lr": 10.5}, InvalidRequest, "at most 10"),
    ({"lr": True}, InvalidRequest, "must be a number"),
    ({"lr": "0.1"}, InvalidRequest, "must be a number"),
    ({"layers": ["act1"]}, InvalidRequest, "'layers': layer 'act1' has no parameters"),
    ({"layers": []}, InvalidRequest, "'layers' is empty"),
    ({"layers": ["conv99"]}, NotFound, "no layer called 'conv99'"),
    ({"target": 10}, InvalidRequest, "from 0 to 9"),
    ({"loss": "hinge"}, InvalidRequest, "no loss called 'hinge'"),
])
def test_bad_options_are_refused_with_a_sentence_naming_them(options: dict[str, Any], error: type[Exception],
                                                             words: str) -> None:
    g, x = graph("mnist-lenet"), sample_input("mnist-lenet")
    with pytest.raises(error, match=words.replace("(", r"\(")):
        take_step(g, x, **options)
    assert all(p.grad is None for p in g.module.parameters())


def test_a_model_without_parameters_has_nothing_to_step() -> None:
    g = build_graph(nn.Sequential(nn.Flatten(), nn.ReLU()), [1, 2, 5])
    with pytest.raises(InvalidRequest, match="no parameters"):
        take_step(g, torch.randn(1, 1, 2, 5))


def test_optimizers_rates_and_bounds_agree_with_the_request_schema() -> None:
    assert get_args(Optimizer) == tuple(OPTIMIZERS) == tuple(TORCH_OPTIMIZERS)
    assert all(0 < lr <= MAX_LR for lr in (o.step_lr for o in OPTIMIZERS.values()))
    lr = StepRequest.model_json_schema()["properties"]["lr"]
    assert lr["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_LR}
    for name, rate in ((o.id, o.step_lr) for o in OPTIMIZERS.values()):
        assert f"{name} {rate:g}" in lr["description"]

