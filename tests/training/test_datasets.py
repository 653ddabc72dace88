"""The shipped subsets: sizes, balance, provenance, normalisation, and the switch to the full Fashion-MNIST."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope.config import Settings
from convscope.training.datasets import Catalogue, full_fashion_files
from models.training.data import FASHION_SYSTEM_DIR, mnist_split
from models.training.subsets import balanced, write_npz
from tests import ROOT

SUBSETS = {"mnist": ROOT / "data" / "mnist-subset.npz", "fashion-mnist": ROOT / "data" / "fashion-mnist-subset.npz"}


def test_subsets_are_small_balanced_uint8_and_described_in_the_data_readme() -> None:
    assert sum(p.stat().st_size for p in SUBSETS.values()) < 6_000_000
    readme = (ROOT / "data" / "README.md").read_text()
    for path in SUBSETS.values():
        assert path.name in readme
        with np.load(path, allow_pickle=False) as arrays:
            for split, size in (("train", 6000), ("test", 1000)):
                images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
                assert images.shape == (size, 28, 28) and images.dtype == np.uint8
                assert np.bincount(labels).tolist() == [size // 10] * 10
                assert len(np.unique(arrays[f"{split}_source"])) == size
    assert "python -m models.training.subsets" in readme and "MIT" in readme


def test_mnist_subset_trains_on_mnist_lenets_training_digits_and_tests_on_its_held_out_ones() -> None:
    train_pool, test_pool = mnist_split(10_000)
    with np.load(SUBSETS["mnist"], allow_pickle=False) as arrays:
        assert set(arrays["train_source"].tolist()) <= set(train_pool.tolist())
        assert set(arrays["test_source"].tolist()) <= set(test_pool.tolist())
        cache = ROOT / ".cache" / "data" / "mnist.pt"
        if cache.exists():  # `make data` has run: the images are exactly those digits
            raw = torch.load(cache, weights_only=True)
            assert np.array_equal(raw["images"][arrays["test_source"]].numpy(), arrays["test_images"])
            assert np.array_equal(raw["labels"][arrays["train_source"]].numpy(), arrays["train_labels"])


def test_the_npz_writer_gives_the_same_bytes_for_the_same_arrays(tmp_path: Path) -> None:
    arrays = {"a": np.arange(12, dtype=np.uint8).reshape(3, 4), "b": np.array([1, 2], dtype=np.int32)}
    write_npz(tmp_path / "one.npz", arrays)
    write_npz(tmp_path / "two.npz", arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with np.load(tmp_path / "one.npz", allow_pickle=False) as loaded:
        assert np.array_equal(loaded["a"], arrays["a"])


def test_balanced_choice_takes_the_same_number_of_each_class_from_the_pool() -> None:
    labels = torch.arange(100) % 4
    chosen = balanced(labels, torch.arange(50, 100), 5, seed=0)
    assert torch.bincount(labels[chosen]).tolist() == [5] * 4 and bool((chosen >= 50).all())
    assert torch.equal(chosen, balanced(labels, torch.arange(50, 100), 5, seed=0))


def test_inputs_are_normalised_with_the_built_in_models_card_values(catalogue: Catalogue) -> None:
    for dataset, card in (("mnist", "mnist-lenet"), ("fashion-mnist", "fashion-tinyvgg")):
        spec = json.loads((ROOT / "models" / f"{card}.json").read_text())["input"]
        data = catalogue.load(dataset)  # type: ignore[arg-type]
        assert data.info.input == spec and data.info.classes == json.loads((ROOT / "models" / f"{card}.json").read_text())["classes"]
        images = data.test_images[:3]
        expected = (images.float().unsqueeze(1) / 255 - spec["mean"][0]) / spec["std"][0]
        assert torch.equal(data.inputs(images), expected)
        assert data.train_labels.dtype == torch.int64 and len(data.train_labels) == 6000


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_full_fashion_mnist_is_used_when_its_idx_files_are_installed(tmp_path: Path, settings: Settings) -> None:
    rng = np.random.default_rng(0)
    for stem, count in (("train", 30), ("t10k", 20)):
        write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (count, 28, 28)))
        write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", np.arange(count) % 10)
    full = Catalogue(settings.subsets_dir, tmp_path)
    info = full.info("fashion-mnist")
    assert (info.kind, info.train_size, info.test_size) == ("full", 30, 20)
    assert full.info("mnist").kind == "subset"
    data = full.load("fashion-mnist")
    assert data.train_images.shape == (30, 28, 28) and data.test_labels.tolist() == [i % 10 for i in range(20)]
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()  # one file missing: the subset again
    assert full_fashion_files(tmp_path) is None
    assert Catalogue(settings.subsets_dir, tmp_path).info("fashion-mnist").kind == "subset"


def test_default_fashion_folder_is_where_the_debian_package_puts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVSCOPE_FASHION_MNIST_DIR", raising=False)
    assert Settings().fashion_mnist_dir == FASHION_SYSTEM_DIR
    monkeypatch.setenv("CONVSCOPE_FASHION_MNIST_DIR", "")
    assert Settings().fashion_mnist_dir is None


def test_a_missing_subset_file_says_how_to_rebuild_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make subsets"):
        Catalogue(tmp_path, None)
