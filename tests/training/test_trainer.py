"""The training loop alone (no threads, no HTTP): it learns, it is reproducible, every choice trains."""

import math
import time
from typing import Any

import pytest
import torch

from convscope.config import Settings
from convscope.optimizers import OPTIMIZERS
from convscope.training.datasets import Catalogue
from convscope.training.nets import ACTIVATIONS, ARCHITECTURES, LOSSES, POOLINGS
from convscope.training.plan import make_plan
from convscope.training.schemas import RunSettings
from convscope.training.trainer import Diverged, EpochReport, StepReport, Trainer
from tests.tolerance import gamma


def trainer(catalogue: Catalogue, settings: Settings, **body: Any) -> Trainer:
    run = RunSettings(**body)
    return Trainer(make_plan(run, catalogue.info(run.dataset), settings), catalogue.load(run.dataset), lambda: False)


def curve(t: Trainer) -> list[tuple[Any, ...]]:
    return [(r.step, r.loss, r.accuracy) if isinstance(r, StepReport) else (r.epoch, r.test_loss, r.test_accuracy)
            for r in t.run()]


def test_a_short_run_learns_loss_falls_and_test_accuracy_beats_chance(catalogue: Catalogue, settings: Settings) -> None:
    t = trainer(catalogue, settings, train_size=640, batch_size=32, epochs=2)
    reports = list(t.run())
    steps = [r for r in reports if isinstance(r, StepReport)]
    epochs = [r for r in reports if isinstance(r, EpochReport)]
    assert [r.step for r in steps] == list(range(1, 41)) and [r.epoch for r in epochs] == [1, 2]
    assert sum(r.loss for r in steps[-5:]) / 5 < 0.7 * sum(r.loss for r in steps[:5]) / 5
    assert epochs[-1].test_accuracy > 0.5 and epochs[-1].test_loss < epochs[0].test_loss
    assert t.final == (epochs[-1].test_loss, epochs[-1].test_accuracy)  # the end reuses the last epoch's test
    first, last = steps[0].kernels, epochs[-1].kernels
    assert first is not None and first.shape == (6, 1, 5, 5) and not torch.equal(first, last)


def test_the_same_seed_gives_the_same_curve_and_weights_whatever_the_global_rng(
        catalogue: Catalogue, settings: Settings) -> None:
    body = {"train_size": 256, "batch_size": 32, "epochs": 2, "optimizer": "momentum"}
    torch.manual_seed(1)
    one = trainer(catalogue, settings, seed=7, **body)
    curve_one = curve(one)
    torch.manual_seed(2)  # another run (or request) drawing from torch's global RNG changes nothing
    torch.rand(100)
    two = trainer(catalogue, settings, seed=7, **body)
    assert curve(two) == curve_one
    for a, b in zip(one.net.state_dict().values(), two.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = trainer(catalogue, settings, seed=8, **body)
    assert curve(other) != curve_one


def test_the_initial_weights_follow_pytorchs_default_scheme(catalogue: Catalogue, settings: Settings) -> None:
    net = trainer(catalogue, settings, architecture="lenet").net
    fan_in = 400  # fc1: 16×5×5 inputs; kaiming_uniform(a=√5) bounds weights and bias at 1/√fan_in
    bound = (1 + gamma(2)) / math.sqrt(fan_in)  # the bound cast to float32, then from + (to - from)·U: 2 roundings
    assert float(net.fc1.weight.detach().abs().max()) <= bound
    assert float(net.fc1.bias.detach().abs().max()) <= bound
    # The std of n uniform draws has a relative standard error of √((kurtosis - 1) / 4n) = √(0.2 / n); 5 of them.
    weights = net.fc1.weight.detach()
    assert float(weights.std()) == pytest.approx(1 / math.sqrt(3 * fan_in), rel=5 * math.sqrt(0.2 / weights.numel()))


CHOICES = [("optimizer", o) for o in OPTIMIZERS] + [("loss", x) for x in LOSSES] + [
    ("activation", a) for a in ACTIVATIONS] + [("pooling", p) for p in POOLINGS] + [
    ("architecture", a) for a in ARCHITECTURES] + [("dataset", "fashion-mnist")]


@pytest.mark.parametrize(("key", "value"), CHOICES)
def test_every_choice_trains_a_few_steps_and_changes_the_weights(
        catalogue: Catalogue, settings: Settings, key: str, value: str) -> None:
    t = trainer(catalogue, settings, train_size=64, batch_size=16, steps=4, **{key: value})
    before = [p.detach().clone() for p in t.net.parameters()]
    reports = list(t.run())
    assert [r.step for r in reports if isinstance(r, StepReport)] == [1, 2, 3, 4]
    assert all(math.isfinite(r.loss) for r in reports if isinstance(r, StepReport))
    assert all(not torch.equal(b, p) for b, p in zip(before, t.net.parameters(), strict=True))
    loss, accuracy = t.final_test() or (math.nan, math.nan)
    assert math.isfinite(loss) and 0 <= accuracy <= 1


def test_a_nan_loss_stops_training_with_the_step(catalogue: Catalogue, settings: Settings,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    t = trainer(catalogue, settings, train_size=64, batch_size=16, steps=4)
    real = t.loss_fn
    t.loss_fn = lambda logits, labels: real(logits, labels) * (math.nan if t.step == 2 else 1.0)
    with pytest.raises(Diverged) as caught:
        list(t.run())
    assert caught.value.step == 3


def test_cancel_and_deadline_stop_between_steps(catalogue: Catalogue, settings: Settings) -> None:
    plan = make_plan(RunSettings(train_size=640, batch_size=32, epochs=3), catalogue.info("mnist"), settings)
    flag = {"stop": False}
    t = Trainer(plan, catalogue.load("mnist"), lambda: flag["stop"])
    for report in t.run():
        if isinstance(report, StepReport) and report.step == 5:
            flag["stop"] = True
    assert (t.step, t.stopped) == (5, "cancelled")
    assert t.final_test() is None  # cancelled: no test pass
    late = Trainer(plan, catalogue.load("mnist"), lambda: False, deadline=time.monotonic() - 1)
    assert list(late.run()) == [] and late.stopped == "time" and late.final_test() is not None
