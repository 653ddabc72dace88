"""The models ConvScope serves, by id: each a model card, its weights, and its layer graph."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from convscope.engine.graph import Graph, build_graph
from convscope.errors import NotFound
from convscope.factory import build
from convscope.imaging import InputSpec


@dataclass(frozen=True)
class Sample:
    """A shipped example image with its true label (None when unknown, as for a user's own images)."""

    id: str
    label: int | None
    path: Path


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve: card, traced graph (an eval-mode copy of the weights) and samples."""

    id: str
    card: dict[str, Any]
    graph: Graph
    spec: InputSpec
    classes: list[str]
    samples: dict[str, Sample]
    # Each sample's preprocessed input, made on first use: the files do not change while serving, and
    # decoding and framing a PNG again costs more than some whole answers (saliency on TinyVGG).
    sample_inputs: dict[str, Tensor] = field(default_factory=dict, repr=False, compare=False)

    def sample(self, sample_id: str) -> Sample:
        try:
            return self.samples[sample_id]
        except KeyError:
            known = ", ".join(self.samples) or "none"
            raise NotFound(f"Model '{self.id}' has no sample called '{sample_id}'. Its samples are: {known}.") from None


def load_card(card_path: Path) -> LoadedModel:
    """Build the model a card describes, load its safetensors weights, trace it."""
    card = json.loads(card_path.read_text())
    folder = card_path.parent
    module = build(card["architecture"]["factory"], card["architecture"].get("kwargs", {}))
    module.load_state_dict(load_file(folder / card["weights"]))
    return from_module(card, module, folder)


def from_module(card: dict[str, Any], module: nn.Module, folder: Path) -> LoadedModel:
    """A model to serve from its card and a module whose weights are in place (loaded, or just
    trained in memory); sample files are relative to folder. The graph traces a copy of module."""
    spec = InputSpec.from_card(card["input"])
    samples = {s["id"]: Sample(s["id"], s.get("label"), folder / s["file"]) for s in card.get("samples", [])}
    graph = build_graph(module, [spec.channels, spec.height, spec.width])
    return LoadedModel(card["id"], card, graph, spec, card["classes"], samples)


class Registry:
    """Loaded models by id, in the order they were added."""

    def __init__(self, models: list[LoadedModel] | None = None) -> None:
        self._models = {m.id: m for m in models or []}
        self._lock = threading.Lock()  # training threads add and remove models while requests read

    @classmethod
    def from_folder(cls, folder: Path) -> "Registry":
        """Every model card (a .json with "weights") in folder."""
        cards = sorted(p for p in folder.glob("*.json") if "weights" in json.loads(p.read_text()))
        return cls([load_card(p) for p in cards])

    def add(self, model: LoadedModel) -> None:
        with self._lock:
            self._models[model.id] = model

    def remove(self, model_id: str) -> None:
        """Forget a model (a no-op if it is not here); requests already holding it finish with it."""
        with self._lock:
            self._models.pop(model_id, None)

    def get(self, model_id: str) -> LoadedModel:
        try:
            return self._models[model_id]
        except KeyError:
            known = ", ".join(self._models) or "none"
            raise NotFound(f"There is no model called '{model_id}'. The models here are: {known}.") from None

    def __iter__(self) -> Iterator[LoadedModel]:
        with self._lock:
            return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)


def set_threads(count: int) -> None:
    """Intra-op threads for every forward and backward (process-wide in PyTorch)."""
    torch.set_num_threads(max(1, count))
