"""A finished run as a model the registry serves: a model card like the built-ins' and sample PNGs."""

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from convscope.optimizers import OPTIMIZERS
from convscope.registry import LoadedModel, from_module
from convscope.training.datasets import DatasetInfo
from convscope.training.nets import ACTIVATIONS, ARCHITECTURES, LOSSES, POOLINGS, architecture_kwargs
from convscope.training.plan import Plan
from convscope.training.records import RunRecords
from convscope.training.trainer import Trainer

SAMPLES_PER_CLASS = 2


RUN_MODEL_PREFIX = "run-"


def model_id(run_id: str) -> str:
    return f"{RUN_MODEL_PREFIX}{run_id}"


def write_samples(trainer: Trainer, folder: Path, model: str) -> list[dict[str, Any]]:
    """The first test images of every class as PNG in folder/model/, with label and prediction."""
    data, net = trainer.data, trainer.net
    (folder / model).mkdir(parents=True, exist_ok=True)
    chosen = [int(i) for label in range(len(data.info.classes))
              for i in (data.test_labels == label).nonzero().flatten()[:SAMPLES_PER_CLASS]]
    net.eval()
    with torch.no_grad():
        predicted = net(data.inputs(data.test_images[chosen])).argmax(1).tolist()
    samples = []
    for index, guess in zip(chosen, predicted, strict=True):
        sample_id = f"test-{index:05d}"
        file = f"{model}/{sample_id}.png"
        Image.fromarray(data.test_images[index].numpy()).save(folder / file)
        samples.append({"id": sample_id, "label": int(data.test_labels[index]), "file": file, "predicted": guess})
    return samples


def card(run_id: str, plan: Plan, info: DatasetInfo, net: nn.Module, test: tuple[float, float], steps: int,
         seconds: float, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The trained model's card: the settings that made it and what it measured on the test set."""
    s = plan.settings
    arch, act, pool = ARCHITECTURES[s.architecture], ACTIVATIONS[s.activation], POOLINGS[s.pooling]
    opt, loss = OPTIMIZERS[s.optimizer], LOSSES[s.loss]
    length = f"{s.epochs} epoch{'s' if s.epochs != 1 else ''}" if s.epochs is not None else f"{s.steps} steps"
    return {
        "id": model_id(run_id),
        "name": f"{arch.name} · {act.name} · {pool.name.split()[0]} pool · {opt.name} · {info.name} (run {run_id})",
        "description": f"Trained in the training lab (run {run_id}) on {plan.train_size:,} images for {length} "
                       f"({steps:,} steps of batch {s.batch_size}) with {opt.name} at learning rate "
                       f"{s.learning_rate:g} and {loss.name.lower()} loss, seed {s.seed}.",
        "architecture": {"factory": arch.factory, "kwargs": architecture_kwargs(s.architecture, s.activation, s.pooling)},
        "dataset": {"name": f"{info.name} ({info.kind}: {plan.train_size:,} train, {info.test_size:,} test)",
                    "id": info.id, "kind": info.kind, "licence": info.licence,
                    "train_size": plan.train_size, "test_size": info.test_size},
        "classes": info.classes,
        "input": info.input,
        "test_loss": round(test[0], 6),
        "test_accuracy": round(test[1], 4),
        "parameter_count": sum(p.numel() for p in net.parameters()),
        "seed": s.seed,
        "training": {**s.model_dump(), "steps_done": steps, "seconds": round(seconds, 2),
                     "threads": torch.get_num_threads(), "torch": torch.__version__},
        "run": run_id,
        "samples": samples,
        "samples_correct": sum(x["predicted"] == x["label"] for x in samples),
    }


def export(run_id: str, trainer: Trainer, test: tuple[float, float], seconds: float, folder: Path,
           records: RunRecords) -> LoadedModel:
    """The trained network as a LoadedModel (traced from a copy, so nothing shares its weights), its
    card, weights and samples stored in the run's record, from which a restarted server serves it."""
    model = model_id(run_id)
    samples = write_samples(trainer, folder, model)
    info = trainer.data.info
    made = card(run_id, trainer.plan, info, trainer.net, test, trainer.step, seconds, samples)
    records.add_model(run_id, made, trainer.net.state_dict(), {s["file"]: (folder / s["file"]).read_bytes()
                                                                for s in samples})
    return from_module(made, trainer.net, folder)
