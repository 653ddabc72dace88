"""Shared fixtures for the training lab: the shipped subsets, always (the full Fashion-MNIST may be
installed here or not; tests that need it make their own)."""

import pytest

from convscope.config import Settings
from convscope.training.datasets import Catalogue


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(fashion_mnist_dir=None)


@pytest.fixture(scope="session")
def catalogue(settings: Settings) -> Catalogue:
    return Catalogue(settings.subsets_dir, settings.fashion_mnist_dir)
