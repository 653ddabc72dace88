"""Recent forward runs, kept so that a layer's full output can be fetched after a summary forward.

A large model's forward answer carries summaries only (app/engine/summary.py); the outputs it
computed wait here under a fresh random id, least recently used first out, until the whole cache
holds at most `budget` bytes. One lock guards the index; the tensors themselves are never written
after they are put, so readers encode them outside the lock.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True, eq=False)
class ForwardRun:
    """One forward: the model's input [C, H, W] and the recorded layers' outputs (no batch dim,
    float32, detached), by layer name in execution order."""

    id: str
    model: str
    input: Tensor
    layers: dict[str, Tensor]
    nbytes: int  # the memory its tensors hold (shared storage counted once)
    owner: weakref.ReferenceType[Any]  # the object that computed it (the model's Graph)

    def made_by(self, model: str, owner: object) -> bool:
        """Whether this run is model `model`'s, computed by `owner` (not a model since replaced)."""
        return self.model == model and self.owner() is owner


def footprint(tensors: Iterable[Tensor]) -> int:
    """Bytes of memory the tensors hold: each storage once, however many views share it."""
    storages = {}
    for t in tensors:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _kept(t: Tensor) -> Tensor:
    return t.detach().to(torch.float32)


class ForwardRunCache:
    """Forward runs by id, least recently used evicted first, at most `budget` bytes in all; a
    budget of 0 keeps nothing. Safe to use from many threads at once."""

    def __init__(self, budget: int) -> None:
        self.budget = max(0, budget)
        self._runs: OrderedDict[str, ForwardRun] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, model: str, owner: object, x: Tensor, layers: Mapping[str, Tensor]) -> str | None:
        """Keep a run's input [C, H, W] and layer outputs; its new id, or None if the cache is off or
        the run alone is larger than the whole budget. Older runs make room, least recently used first."""
        if self.budget == 0:
            return None
        kept = {name: _kept(t) for name, t in layers.items()}
        x = _kept(x)
        size = footprint([x, *kept.values()])
        if size > self.budget:
            return None
        run = ForwardRun(secrets.token_urlsafe(12), model, x, kept, size, weakref.ref(owner))
        evicted = []  # freed after the lock is released: giving back megabytes is not instant
        with self._lock:
            while self._runs and self._bytes + size > self.budget:
                _, old = self._runs.popitem(last=False)
                self._bytes -= old.nbytes
                evicted.append(old)
            self._runs[run.id] = run
            self._bytes += size
        return run.id

    def get(self, run_id: str) -> ForwardRun | None:
        """The run with this id, now the most recently used; None once evicted (or never kept)."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                self._runs.move_to_end(run_id)
            return run

    @property
    def nbytes(self) -> int:
        """Bytes held by the runs kept now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs
