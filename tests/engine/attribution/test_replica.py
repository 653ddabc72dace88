"""Captum's hooks live on private replicas only: the shared Graph module never gets a hook or a
`.grad`, replicas share its weights without copying them, and a replica with anything left on it
is not reused."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from convscope.config import Settings
from convscope.engine.attribution import replica
from convscope.engine.attribution.explain import explain
from convscope.engine.attribution.registry import METHODS
from convscope.engine.graph import Graph, build_graph
from convscope.imaging import load_image
from convscope.registry import LoadedModel, load_card
from tests import ROOT
from tests.engine.attribution.test_methods import SoftmaxLeNet
from tests.nets import make


@pytest.fixture(scope="module")
def lenet() -> LoadedModel:
    return load_card(ROOT / "models" / "mnist-lenet.json")


@pytest.fixture(scope="module")
def resnet() -> Graph:
    model, shape = make("resnet")
    return build_graph(model, shape)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_a_replica_has_its_own_modules_over_the_same_frozen_weights(resnet: Graph) -> None:
    shared = resnet.module
    copy = replica.build(resnet)
    assert not {id(m) for m in shared.modules()} & {id(m) for m in copy.modules()}  # hooks land on its own modules
    for (name, mine), theirs in zip(copy.named_parameters(), shared.parameters()):
        assert mine is not theirs and mine.data_ptr() == theirs.data_ptr(), name  # no copy of the weights
        assert not mine.requires_grad and theirs.requires_grad, name
    for mine, theirs in zip(copy.buffers(), shared.buffers()):
        assert mine is theirs  # batch norm's statistics: read only, in eval mode
    assert not copy.training
    x = torch.randn(1, *resnet.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(copy(x), shared(x), rtol=0, atol=0)  # the same modules' code over the same weights


def test_every_method_leaves_the_shared_module_untouched(lenet: LoadedModel, resnet: Graph) -> None:
    for graph, x in ((lenet.graph, load_image(next(iter(lenet.samples.values())).path.read_bytes(), lenet.spec,
                                              Settings())), (resnet, torch.randn(1, *resnet.input_shape))):
        before = snapshot(graph.module)
        for method in METHODS:
            explain(graph, x, method)
            assert replica.leftovers(graph.module) == "", method
        assert all(p.grad is None and p.requires_grad for p in graph.module.parameters())
        after = snapshot(graph.module)
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert replica.idle_count(graph) >= 1
        with replica.lease(graph) as leased:
            assert replica.leftovers(leased) == ""  # Captum removed its hooks from the replica too


def test_leases_in_flight_at_once_get_different_replicas_and_an_idle_one_is_reused(resnet: Graph) -> None:
    with replica.lease(resnet) as first, replica.lease(resnet) as second:
        assert first is not second
    with replica.lease(resnet) as again:
        assert again is first or again is second


def test_a_replica_with_a_hook_left_on_it_is_dropped_not_reused(resnet: Graph) -> None:
    with replica.lease(resnet) as leased:
        pass
    idle = replica.idle_count(resnet)
    with replica.lease(resnet) as leased:
        leased.get_submodule("conv1").register_forward_hook(lambda *args: None)  # a bug that forgets its hook
    assert replica.idle_count(resnet) == idle - 1
    with replica.lease(resnet) as fresh:
        assert fresh is not leased and replica.leftovers(fresh) == ""


def test_leftovers_names_hooks_tensor_hooks_and_gradients() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    assert replica.leftovers(net) == ""
    handle = net[1].register_full_backward_hook(lambda *args: None)
    assert replica.leftovers(net) == "backward hook on '1'"
    handle.remove()
    net[0].weight.grad = torch.zeros_like(net[0].weight)
    net[0].bias.register_hook(lambda g: g)
    assert replica.leftovers(net) == "a .grad on '0.weight', a tensor hook on '0.bias'"


def test_a_model_ending_in_softmax_gets_a_replica_that_returns_its_logits(lenet: LoadedModel) -> None:
    ending = SoftmaxLeNet()
    ending.load_state_dict(lenet.graph.module.state_dict())
    graph = build_graph(ending.eval(), [1, 28, 28])
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    # Bit for bit: the same LeNet layers and weights on the same input, then the same softmax kernel.
    with torch.no_grad(), replica.lease(graph) as leased:
        logits = leased(x)
        probabilities = graph.module(x)
        torch.testing.assert_close(logits, lenet.graph.module(x), rtol=0, atol=0)
    # The shared module still ends in its softmax.
    torch.testing.assert_close(probabilities, logits.softmax(1), rtol=0, atol=0)


def test_threads_attributing_at_once_get_the_answers_they_get_alone(lenet: LoadedModel) -> None:
    x = load_image(next(iter(lenet.samples.values())).path.read_bytes(), lenet.spec, Settings())
    jobs = [(method, target) for method in METHODS for target in (None, 2)]
    alone = [explain(lenet.graph, x, m, t).attribution for m, t in jobs]
    together: list[torch.Tensor | None] = [None] * len(jobs)

    def run(i: int) -> None:
        together[i] = explain(lenet.graph, x, *jobs[i]).attribution

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (method, target), a, b in zip(jobs, alone, together):
        assert b is not None and torch.equal(a, b), f"{method} target={target}"
    assert replica.leftovers(lenet.graph.module) == ""
