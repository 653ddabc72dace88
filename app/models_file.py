"""A user's own models, from a TOML models file: every entry checked, built, weighted and traced.

    [[models]]
    id = "resnet18"                          # in URLs: letters, digits, . _ -
    factory = "examples.resnet18:resnet18"   # package.module:callable, importable from the cwd or PYTHONPATH
    kwargs = { num_classes = 1000 }          # optional: keyword arguments for the factory
    weights = "resnet18.safetensors"         # optional: .safetensors, or a .pt/.pth state dict
    input = [3, 224, 224]                    # [C, H, W]
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    classes = "classes.txt"                  # a list, or a text file with one class per line

Paths are relative to the models file's folder. Any mistake stops the start with a ModelsFileError
whose sentences name the entry and the fix; the checks that need no import run for every entry
first, so one start reports every typo at once.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from convscope.config import Settings
from convscope.errors import ConvScopeError, ModelsFileError, UntraceableModel
from convscope.factory import FactoryError, build, first_line
from convscope.imaging import FRAMINGS, decode_image
from convscope.registry import LoadedModel, Registry, from_module
from convscope.weights import WEIGHT_SUFFIXES, WeightsError, load_weights

log = logging.getLogger("convscope")

# Every key an entry may have, with what it is: the text of the "unknown key" message.
KEYS = {
    "id": 'a short name used in URLs, such as "resnet18"',
    "factory": '"package.module:callable" that builds the model',
    "kwargs": "keyword arguments for the factory (a table)",
    "weights": "a .safetensors file, or a .pt/.pth state dict",
    "input": "[channels, height, width]",
    "mean": "one number per channel",
    "std": "one number per channel",
    "classes": "a list of class names, or a text file with one per line",
    "name": "a title for people",
    "description": "a sentence or two about the model",
    "dataset": "the data it was trained on",
    "framing": f"how an upload is fitted to the input: {', '.join(FRAMINGS)}",
    "samples": "a folder of images, or a list of image paths (or {file, label} tables)",
}
# The fix for each required key that is missing.
REQUIRED = {
    "id": 'id = "my-model" (a name for URLs)',
    "factory": 'factory = "my_package.my_module:build_model" (the function or class that builds the model)',
    "input": "input = [3, 224, 224] (channels, height, width)",
    "mean": "mean = [0.485, 0.456, 0.406] (one per channel, for pixels scaled to [0, 1])",
    "std": "std = [0.229, 0.224, 0.225] (one per channel)",
    "classes": 'classes = ["cat", "dog"], or classes = "classes.txt" with one name per line',
}
COMMAND_LINE = "the command line"  # where `convscope serve --model` models come from, in messages and cards
INDICES = "class indices"  # where the classes of an entry without any come from: 0, 1, ... K-1
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


class Problem(Exception):
    """One mistake in an entry, in a sentence with its fix (collected into a ModelsFileError)."""


@dataclass(frozen=True)
class Entry:
    """One [[models]] table whose fields are all present, typed and consistent; paths resolved."""

    index: int  # 1-based position in the file
    id: str
    factory: str
    kwargs: dict[str, Any]
    weights: Path | None
    input: tuple[int, int, int]  # C, H, W
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str]
    classes_from: str  # 'classes' as written: the list, or the text file's name
    name: str
    description: str
    dataset: str
    framing: str
    samples: list[tuple[str, Path, int | None]]  # id, file, label

    @property
    def where(self) -> str:
        return f"model '{self.id}' (entry {self.index})"


def load_registry(settings: Settings, tables: Sequence[dict[str, Any]] = ()) -> Registry:
    """The models to serve: the built-ins (unless settings.builtins is false), then the models file's, then
    those of `tables` (`convscope serve --model`: paths from the current folder, classes 0, 1, ... by default)."""
    models = list(Registry.from_folder(settings.models_dir)) if settings.builtins else []
    if settings.models_file is not None:
        models += load_models_file(settings.models_file, settings, taken=[m.id for m in models])
    if tables:
        models += load_tables(tables, COMMAND_LINE, Path.cwd(), settings, [m.id for m in models],
                              class_indices=True)
    return Registry(models)


def load_models_file(path: Path, settings: Settings, taken: Sequence[str] = ()) -> list[LoadedModel]:
    """Every model in a models file, ready to serve; ModelsFileError lists each mistake found.

    `taken`: ids already served (the built-ins), which no entry may reuse."""
    path = Path(path).expanduser()
    return load_tables(_read(path), path, path.resolve().parent, settings, taken)


def load_tables(tables: Sequence[dict[str, Any]], source: str | Path, folder: Path, settings: Settings,
                taken: Sequence[str] = (), class_indices: bool = False) -> list[LoadedModel]:
    """The models of [[models]] tables as a models file holds them (or as `convscope serve --model` makes
    one); `source` names where they come from in messages, and paths are relative to `folder`.
    `class_indices`: a table without classes names its classes 0, 1, ... (the command line's default)."""
    entries: list[Entry] = []
    problems: list[str] = []
    for index, table in enumerate(tables, 1):
        checked = _check(index, table, folder, class_indices)
        if isinstance(checked, Entry):
            entries.append(checked)
        else:
            problems += checked
    problems += _duplicates(entries, taken)
    if problems:
        raise ModelsFileError(source, problems)
    models = []
    for entry in entries:
        start = time.perf_counter()
        try:
            models.append(_load(entry, source, folder, settings))
        except Problem as exc:
            problems.append(f"{entry.where}: {exc}")
            continue
        log.info("Loaded %s from %s in %.1f s", entry.id, source, time.perf_counter() - start)
    if problems:
        raise ModelsFileError(source, problems)
    return models


def _read(path: Path) -> list[dict[str, Any]]:
    """The [[models]] tables of the file, or ModelsFileError if it is not a models file at all."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelsFileError(path, [f"there is no such file (relative paths start from {os.getcwd()})."]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelsFileError(path, [f"the file cannot be read as UTF-8 text: {first_line(exc)}."]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelsFileError(path, [f"this is not valid TOML: {exc}. Fix the syntax there "
                                     "(strings need double quotes, lists square brackets)."]) from None
    problems = [f"unknown top-level key '{key}'. A models file holds only [[models]] tables, one per model."
                for key in document if key != "models"]
    models = document.get("models")
    if models is None:
        problems.append("it lists no models. Add a [[models]] table for each model (see the README).")
    elif not (isinstance(models, list) and all(isinstance(t, dict) for t in models)):
        problems.append("'models' must be an array of tables: write [[models]], with two brackets, above each model.")
    elif not models:
        problems.append("it lists no models. Add a [[models]] table for each model (see the README).")
    if problems:
        raise ModelsFileError(path, problems)
    assert isinstance(models, list)
    return models


def _check(index: int, table: dict[str, Any], folder: Path, class_indices: bool = False) -> Entry | list[str]:
    """The entry with every field checked, or all of its mistakes (see load_tables for class_indices)."""
    raw_id = table.get("id")
    where = f"model '{raw_id}' (entry {index})" if isinstance(raw_id, str) and raw_id else f"entry {index}"
    problems: list[str] = []

    def field(key: str, check: Callable[[Any], Any], default: Any = None) -> Any:
        if key not in table:
            if key in REQUIRED:
                problems.append(f"{where}: '{key}' is missing. Add {REQUIRED[key]}.")
            return default
        try:
            return check(table[key])
        except Problem as exc:
            problems.append(f"{where}: {exc}")
            return default

    for key in table:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            known = ", ".join(KEYS)
            problems.append(f"{where}: unknown key '{key}'.{hint} The known keys are: {known}.")
    model_id = field("id", _id)
    factory = field("factory", _factory)
    kwargs = field("kwargs", _kwargs, {})
    weights = field("weights", lambda v: _weights(v, folder))
    shape = field("input", _input)
    channels = shape[0] if shape else None
    mean = field("mean", lambda v: _per_channel("mean", v, channels))
    std = field("std", lambda v: _per_channel("std", v, channels, positive=True))
    if class_indices and "classes" not in table:
        classes: tuple[list[str], str] | None = ([], INDICES)  # counted once the model is built (_load)
    else:
        classes = field("classes", lambda v: _classes(v, folder))
    texts = {key: field(key, partial(_text, key), "") for key in ("name", "description", "dataset")}
    framing = field("framing", _framing, "resize-crop")
    samples = field("samples", lambda v: _samples(v, folder, classes[0] if classes else None), [])
    if problems:
        return problems
    return Entry(index, model_id, factory, kwargs, weights, shape, mean, std, classes[0], classes[1],
                 texts["name"], texts["description"], texts["dataset"], framing, samples)


def _show(value: Any) -> str:
    """A value as it would be written in TOML (near enough: JSON)."""
    return json.dumps(value, default=str)


def _id(value: Any) -> str:
    if not isinstance(value, str) or not ID.fullmatch(value):
        raise Problem(f"id {_show(value)} cannot name a model in URLs. Use up to 64 letters, digits, '.', '_' "
                      'or \'-\', starting with a letter or digit, such as id = "my-resnet".')
    if value.startswith("run-"):
        raise Problem(f"id '{value}' starts with 'run-', which names the training lab's models. Choose another id.")
    return value


def _factory(value: Any) -> str:
    module, colon, attr = value.partition(":") if isinstance(value, str) else ("", "", "")
    if not (colon and module.strip() and attr.strip()) or " " in value:
        raise Problem(f"factory {_show(value)} is not \"package.module:callable\". Name the module, a colon, then "
                      'the function or class that builds the model, such as factory = "torchvision.models:resnet18".')
    return str(value)


def _kwargs(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Problem(f"kwargs must be a table of keyword arguments, such as kwargs = {{ num_classes = 10 }}; "
                      f"it is {_show(value)}.")
    return value


def _weights(value: Any, folder: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise Problem(f'weights must be a file name in double quotes, such as weights = "model.safetensors"; '
                      f"it is {_show(value)}.")
    path = folder / Path(value).expanduser()
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise Problem(f"weights file '{value}' is neither .safetensors nor a .pt/.pth state dict. Save the weights with "
                      "safetensors.torch.save_file(model.state_dict(), path) or torch.save(model.state_dict(), path).")
    if not path.is_file():
        raise Problem(f"weights file {path} does not exist. Weights paths are relative to the models file's "
                      f"folder ({folder}).")
    return path


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _input(value: Any) -> tuple[int, int, int]:
    if not (isinstance(value, list) and len(value) == 3 and all(_whole(v) and v > 0 for v in value)):
        raise Problem(f"input must be [channels, height, width], three positive whole numbers such as "
                      f"input = [3, 224, 224]; it is {_show(value)}.")
    if value[0] not in (1, 3):
        raise Problem(f"input has {value[0]} channels; ConvScope feeds images as 1 channel (grey) or 3 (RGB). "
                      "Serve a model whose first layer takes 1 or 3 channels.")
    return value[0], value[1], value[2]


def _per_channel(key: str, value: Any, channels: int | None, positive: bool = False) -> tuple[float, ...]:
    if not (isinstance(value, list) and value and all(_number(v) for v in value)):
        example = "[0.485, 0.456, 0.406]" if key == "mean" else "[0.229, 0.224, 0.225]"
        raise Problem(f"{key} must be a list of numbers, one per input channel, such as {key} = {example}; "
                      f"it is {_show(value)}.")
    if channels is not None and len(value) != channels:
        raise Problem(f"{key} has {len(value)} value(s) but input has {channels} channel(s). Give one {key} per "
                      f"channel, such as {key} = {[0.5] * channels}.")
    if positive and min(value) <= 0:
        raise Problem(f"std {_show(value)} has a value that is not above 0: every input is divided by it.")
    return tuple(float(v) for v in value)


def _classes(value: Any, folder: Path) -> tuple[list[str], str]:
    """The class names, and where they came from (for messages)."""
    if isinstance(value, list):
        if not value or not all(isinstance(c, str) and c.strip() for c in value):
            raise Problem(f"classes must list the class names as non-empty strings, in the order of the model's "
                          f"outputs; it is {_show(value)[:200]}.")
        return value, "'classes'"
    if not isinstance(value, str) or not value:
        raise Problem(f'classes must be a list of names or a text file\'s name, such as classes = "classes.txt"; '
                      f"it is {_show(value)}.")
    path = folder / Path(value).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise Problem(f"classes file {path} does not exist. Paths are relative to the models file's folder.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise Problem(f"classes file {path} cannot be read as UTF-8 text: {first_line(exc)}.") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    empty = [i for i, name in enumerate(names, 1) if not name]
    if not names or empty:
        where = f"line {empty[0]} is empty" if empty else "it is empty"
        raise Problem(f"classes file {path}: {where}. Write one class name per line, in the order of the model's "
                      "outputs.")
    return names, f"{value}"


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise Problem(f"{key} must be a string in double quotes; it is {_show(value)}.")
    return value


def _framing(value: Any) -> str:
    if value not in FRAMINGS:
        raise Problem(f"framing {_show(value)} is not one ConvScope knows. Use one of: {', '.join(FRAMINGS)} "
                      "(resize-crop, the default, fits photos; the mnist ones frame a light object on black).")
    return str(value)


def _samples(value: Any, folder: Path, classes: list[str] | None) -> list[tuple[str, Path, int | None]]:
    """(id, file, label) of each sample image; the id is the file name without its extension."""
    items: list[tuple[Path, Any]] = []
    if isinstance(value, str) and value:
        found = folder / Path(value).expanduser()
        if not found.is_dir():
            raise Problem(f"samples folder {found} does not exist. Give a folder of images, or a list of image "
                          "paths, relative to the models file's folder.")
        items = [(p, None) for p in sorted(found.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        if not items:
            raise Problem(f"samples folder {found} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    elif isinstance(value, list):
        for item in value:
            file, label = (item.get("file"), item.get("label")) if isinstance(item, dict) else (item, None)
            if not isinstance(file, str) or not file or (isinstance(item, dict) and set(item) - {"file", "label"}):
                raise Problem(f'each sample must be an image path, such as "cat.jpg", or a table such as '
                              f'{{ file = "cat.jpg", label = "cat" }}; one is {_show(item)}.')
            items.append((folder / Path(file).expanduser(), label))
    else:
        raise Problem(f'samples must be a folder, such as samples = "samples", or a list of image paths; '
                      f"it is {_show(value)}.")
    samples: list[tuple[str, Path, int | None]] = []
    seen: dict[str, Path] = {}
    for path, label in items:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise Problem(f"sample {path} is not an image file ConvScope reads ({', '.join(IMAGE_SUFFIXES)}).")
        if not path.is_file():
            raise Problem(f"sample {path} does not exist. Sample paths are relative to the models file's folder.")
        if path.stem in seen:
            raise Problem(f"samples {seen[path.stem]} and {path} would both be called '{path.stem}'. "
                          "Rename one: a sample's id is its file name without the extension.")
        seen[path.stem] = path
        samples.append((path.stem, path, _label(label, path, classes)))
    return samples


def _label(label: Any, path: Path, classes: list[str] | None) -> int | None:
    """A sample's label as a class index: given as the class name or its index, or None if not given."""
    if label is None or classes is None:
        return None
    if isinstance(label, str) and label in classes:
        return classes.index(label)
    if _whole(label) and 0 <= label < len(classes):
        return int(label)
    raise Problem(f"sample {path.name} has label {_show(label)}, which is neither one of the classes nor an index "
                  f"from 0 to {len(classes) - 1}. Leave the label out if it is not known.")


def _duplicates(entries: list[Entry], taken: Sequence[str]) -> list[str]:
    problems = []
    first: dict[str, Entry] = {}
    for entry in entries:
        if entry.id in taken:
            problems.append(f"{entry.where}: id '{entry.id}' is already a built-in model's. Choose another id, or "
                            "serve only the models file's models (convscope serve --no-builtins).")
        elif entry.id in first:
            problems.append(f"{entry.where}: id '{entry.id}' is already entry {first[entry.id].index}'s. Give each "
                            "model its own id.")
        first.setdefault(entry.id, entry)
    return problems


def _load(entry: Entry, source: str | Path, folder: Path, settings: Settings) -> LoadedModel:
    """Build, weight, trace and check one entry's model; Problem on the first thing that fails."""
    for sample_id, file, _ in entry.samples:
        try:
            decode_image(file.read_bytes(), settings)
        except ConvScopeError as exc:
            raise Problem(f"sample '{sample_id}' ({file}) cannot be used: {exc.detail}") from None
    try:
        module = build(entry.factory, entry.kwargs)
        if entry.weights is not None:
            load_weights(module, entry.weights)
    except (FactoryError, WeightsError) as exc:
        raise Problem(str(exc)) from None
    classes = entry.classes or [str(k) for k in range(_scores(module.eval(), entry.input))]
    card: dict[str, Any] = {
        "id": entry.id, "name": entry.name or entry.id, "description": entry.description,
        "architecture": {"factory": entry.factory, "kwargs": entry.kwargs}, "classes": classes,
        "input": {"channels": entry.input[0], "height": entry.input[1], "width": entry.input[2],
                  "mean": list(entry.mean), "std": list(entry.std), "framing": entry.framing},
        "samples": [{"id": i, "file": str(f), "label": label} for i, f, label in entry.samples],
        "models_file": str(source)}
    if entry.weights is not None:
        card["weights"] = str(entry.weights)
    if entry.dataset:
        card["dataset"] = {"name": entry.dataset}
    try:
        model = from_module(card, module, folder)
    except UntraceableModel as exc:
        raise Problem(f"{exc.detail}. ConvScope draws a model from its torch.fx trace: write that part of forward "
                      "without Python control flow on tensor values (torch.where, for example).") from None
    except ConvScopeError as exc:
        raise Problem(f"{exc.detail} Check that input {list(entry.input)} is the [C, H, W] the model was built "
                      "for, and that forward returns one tensor of class scores [1, K].") from None
    _check_outputs(entry, model)
    return model


def _scores(module: torch.nn.Module, shape: tuple[int, int, int]) -> int:
    """How many class scores the model outputs for one blank input of `shape`, or Problem."""
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, *shape))
    except Exception as exc:  # the user's forward, on the input they named
        raise Problem(f"a forward of a blank {list(shape)} input raised {type(exc).__name__}: {first_line(exc)}. "
                      "Check that --input is the [C, H, W] the model was built for.") from None
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 1:
        raise Problem("forward must return one tensor of class scores [1, K] for a [1, C, H, W] input.")
    return int(out.shape[1])


def _check_outputs(entry: Entry, model: LoadedModel) -> None:
    """The number of class scores, measured with one forward of a blank input, is that of classes."""
    if entry.classes_from == INDICES:
        return  # counted from the same forward
    with torch.no_grad():
        out: Tensor = model.graph.module(torch.zeros(1, *entry.input, dtype=model.graph.dtype))
    scores = out.shape[1]
    if scores != len(entry.classes):
        source = "'classes'" if entry.classes_from == "'classes'" else f"classes file '{entry.classes_from}'"
        raise Problem(f"the model outputs {scores} class scores, but {source} names {len(entry.classes)} classes. "
                      "Give one class name per output, in order (or build the model for that many classes, for "
                      "example with kwargs).")


def summary_line(model: LoadedModel) -> str:
    """One line about a loaded model, for `convscope check`."""
    spec, graph = model.spec, model.graph
    parameters = sum(p.numel() for p in graph.module.parameters())
    weights = Path(model.card["weights"]).name if "weights" in model.card else "as the factory made them"
    return (f"{model.id}: {len(graph.layers)} layers, {parameters:,} parameters, input "
            f"{spec.channels}×{spec.height}×{spec.width}, {len(model.classes)} classes, {len(model.samples)} "
            f"samples; factory {model.card['architecture']['factory']}, weights {weights}")

