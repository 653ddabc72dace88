"""Settings checked against the data and the limits: step arithmetic, defaults, 422 sentences."""

import pytest

from convscope.config import Settings
from convscope.errors import InvalidRequest
from convscope.training.datasets import Catalogue
from convscope.training.plan import make_plan
from convscope.training.schemas import MAX_KERNEL_SNAPSHOTS, MAX_STEP_EVENTS, RunSettings


def test_defaults_are_one_epoch_of_the_whole_subset_with_the_optimizers_learning_rate(
        catalogue: Catalogue, settings: Settings) -> None:
    plan = make_plan(RunSettings(), catalogue.info("mnist"), settings)
    assert (plan.train_size, plan.steps_per_epoch, plan.total_steps, plan.epochs) == (6000, 188, 188, 1)
    assert plan.settings.epochs == 1 and plan.settings.learning_rate == 0.001 and plan.settings.log_every == 1
    sgd = make_plan(RunSettings(optimizer="sgd"), catalogue.info("mnist"), settings)
    assert sgd.settings.learning_rate == 0.1
    given = make_plan(RunSettings(optimizer="sgd", learning_rate=0.05), catalogue.info("mnist"), settings)
    assert given.settings.learning_rate == 0.05


def test_steps_may_end_inside_an_epoch(catalogue: Catalogue, settings: Settings) -> None:
    plan = make_plan(RunSettings(steps=50, train_size=320, batch_size=32), catalogue.info("mnist"), settings)
    assert (plan.steps_per_epoch, plan.total_steps, plan.epochs, plan.settings.epochs) == (10, 50, 5, None)
    odd = make_plan(RunSettings(steps=25, train_size=100, batch_size=32), catalogue.info("mnist"), settings)
    assert (odd.steps_per_epoch, odd.epochs) == (4, 7)  # 32+32+32+4 per epoch


def test_step_events_are_bounded_and_kernels_ride_on_few_of_them(catalogue: Catalogue, settings: Settings) -> None:
    plan = make_plan(RunSettings(steps=15000, log_every=1, batch_size=32), catalogue.info("mnist"), settings)
    assert plan.step_events <= MAX_STEP_EVENTS and plan.log_every == 15
    assert plan.step_events / plan.kernel_every <= MAX_KERNEL_SNAPSHOTS


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"epochs": 2, "steps": 10}, "steps", "not both"),
    ({"train_size": 6001}, "train_size", "6,000 training images"),
    ({"train_size": 10, "batch_size": 32}, "batch_size", "10 images"),
    ({"steps": 20001}, "steps", "at most 20,000"),
    ({"epochs": 100, "batch_size": 1}, "epochs", "at most 20,000"),
    ({"steps": 2000, "train_size": 32, "batch_size": 32}, "steps", "at most 100"),
])
def test_settings_that_cannot_work_are_refused_naming_the_field(
        catalogue: Catalogue, settings: Settings, body: dict[str, int], field: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        make_plan(RunSettings(**body), catalogue.info("mnist"), settings)  # type: ignore[arg-type]
    assert caught.value.detail.startswith(f"'{field}': ") and words in caught.value.detail
    assert caught.value.errors == [{"loc": ["body", field], "msg": caught.value.detail.split(": ", 1)[1],
                                    "type": "value_error"}]


def test_the_documented_examples_make_valid_plans(catalogue: Catalogue, settings: Settings) -> None:
    examples = RunSettings.model_json_schema()["examples"]
    assert len(examples) == 2
    for example in examples:
        body = RunSettings.model_validate(example)
        assert make_plan(body, catalogue.info(body.dataset), settings).total_steps > 0
