"""Engine tests run with one intra-op thread, as the app does by default (see app/config.py)."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread() -> Iterator[None]:
    # Small models spend most of their time waking idle intra-op threads (DESIGN.md).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
