"""Models files: a good one serves its models; every mistake stops the start with a sentence that
names the entry and the fix."""

import os
import pickle
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor, nn

from convscope.config import Settings
from convscope.errors import ModelsFileError
from convscope.main import create_app
from convscope.models_file import KEYS, load_models_file, load_registry
from convscope.registry import LoadedModel
from tests import ROOT
from tests.nets import ResidualNet, settle_batch_norm

HERE = "tests.test_models_file"
SHAPE = [3, 12, 12]
CLASSES = [f"c{i}" for i in range(10)]


# Factories named in the models files below (importable: pytest runs from the repository's folder).

def residual(classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    model = ResidualNet()
    model.fc = nn.Linear(8, classes)
    return settle_batch_norm(model, SHAPE)


def broken() -> nn.Module:
    raise RuntimeError("this factory is broken on purpose")


def not_a_module() -> int:
    return 42


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 12 * 12, 10)

    def forward(self, x: Tensor) -> Tensor:
        if x.mean() > 0:
            x = -x
        return self.fc(x.flatten(1))


@pytest.fixture(autouse=True)
def in_repository() -> Iterator[None]:
    before = os.getcwd()
    os.chdir(ROOT)  # factories are imported from the current directory
    yield
    os.chdir(before)


def entry(**fields: Any) -> dict[str, Any]:
    """A valid entry for `residual`, with fields changed (None removes one)."""
    base: dict[str, Any] = {"id": "mine", "factory": f"{HERE}:residual", "input": SHAPE, "mean": [0.5] * 3,
                            "std": [0.25] * 3, "classes": CLASSES}
    base |= fields
    return {k: v for k, v in base.items() if v is not None}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def write(folder: Path, *entries: dict[str, Any]) -> Path:
    text = "".join("[[models]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in e.items()) + "\n"
                   for e in entries)
    path = folder / "models.toml"
    path.write_text(text)
    return path


def load(path: Path, taken: tuple[str, ...] = ()) -> list[LoadedModel]:
    return load_models_file(path, Settings(), taken)


def problems(path: Path, taken: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ModelsFileError) as info:
        load(path, taken)
    assert str(info.value).startswith(f"Cannot serve the models in {path}:\n- ")
    return info.value.problems


def only_problem(path: Path) -> str:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


def save_weights(model: nn.Module, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    else:
        torch.save(model.state_dict(), path)
    return path


def params(model: LoadedModel) -> dict[str, Tensor]:
    return dict(model.graph.module.state_dict())


# A good file.

@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_weights_file_is_loaded_into_the_factorys_model(tmp_path: Path, suffix: str) -> None:
    trained = residual()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(torch.randn_like(p))  # differs from what the factory makes
    save_weights(trained, tmp_path / f"w{suffix}")
    (model,) = load(write(tmp_path, entry(weights=f"w{suffix}")))
    served = params(model)
    for key, value in trained.state_dict().items():
        assert torch.equal(served[key], value), key
    x = torch.randn(1, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(model.graph.module(x), trained(x), rtol=0, atol=0)  # same modules, same weights


def test_every_field_reaches_the_served_model(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES) + "\n")
    (tmp_path / "pics").mkdir()
    for name, size in (("b", (40, 30)), ("a", (12, 12))):
        Image.new("RGB", size, (200, 10, 10)).save(tmp_path / "pics" / f"{name}.png")
    Image.new("L", (20, 20), 128).save(tmp_path / "grey.jpg")
    path = write(tmp_path, entry(classes="classes.txt", samples="pics", name="Mine", description="A test.",
                                 dataset="noise", framing="mnist-object", kwargs={"classes": 10}),
                 entry(id="other", samples=["grey.jpg", {"file": "pics/a.png", "label": "c3"},
                                             {"file": "pics/b.png", "label": 7}]))
    mine, other = load(path)
    assert mine.id == "mine" and mine.classes == CLASSES
    assert mine.card["name"] == "Mine" and mine.card["description"] == "A test."
    assert mine.card["dataset"] == {"name": "noise"}
    assert (mine.spec.channels, mine.spec.height, mine.spec.width) == (3, 12, 12)
    assert mine.spec.mean == (0.5,) * 3 and mine.spec.std == (0.25,) * 3 and mine.spec.framing == "mnist-object"
    assert [(s.id, s.label, s.path.name) for s in mine.samples.values()] == [("a", None, "a.png"), ("b", None, "b.png")]
    assert [(s.id, s.label) for s in other.samples.values()] == [("grey", None), ("a", 3), ("b", 7)]
    assert other.card["name"] == "other" and other.spec.framing == "resize-crop"


def test_settings_read_the_models_file_and_builtins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().models_file is None and Settings().builtins is True
    monkeypatch.setenv("CONVSCOPE_MODELS_FILE", "my-models.toml")
    monkeypatch.setenv("CONVSCOPE_BUILTINS", "false")
    assert Settings().models_file == Path("my-models.toml") and Settings().builtins is False


def test_app_serves_builtins_and_the_files_models_or_only_the_files(tmp_path: Path) -> None:
    Image.new("RGB", (30, 20), (0, 120, 240)).save(tmp_path / "blue.jpg")
    path = write(tmp_path, entry(samples=["blue.jpg"]))
    with TestClient(create_app(Settings(models_file=path))) as client:
        ids = [m["id"] for m in client.get("/api/models").json()["models"]]
        assert ids == ["fashion-tinyvgg", "mnist-lenet", "mine"]
    with TestClient(create_app(Settings(models_file=path, builtins=False))) as client:
        assert [m["id"] for m in client.get("/api/models").json()["models"]] == ["mine"]
        samples = client.get("/api/models/mine/samples").json()["samples"]
        assert samples == [{"id": "blue", "label": None, "label_name": None,
                            "url": "/api/models/mine/samples/blue.png"}]
        image = client.get(samples[0]["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content == (tmp_path / "blue.jpg").read_bytes()
        forward = client.post("/api/models/mine/forward", json={"sample": "blue", "layers": ["fc"]})
        assert forward.status_code == 200, forward.text
        assert len(forward.json()["prediction"]["probabilities"]) == 10


def test_a_bad_file_stops_the_app_from_starting(tmp_path: Path) -> None:
    path = write(tmp_path, entry(factory="tests.no_such_module:make"))
    with pytest.raises(ModelsFileError, match="there is no module 'tests.no_such_module'"):
        with TestClient(create_app(Settings(models_file=path))):
            pass


# The three mistakes the issue names.

def test_missing_factory_module_names_it_and_where_imports_come_from(tmp_path: Path) -> None:
    message = only_problem(write(tmp_path, entry(factory="tests.no_such_module:make")))
    assert message == (
        "model 'mine' (entry 1): cannot import 'tests.no_such_module' for factory 'tests.no_such_module:make': "
        f"there is no module 'tests.no_such_module'. Check the spelling, and run ConvScope from the folder that "
        f"holds it (now {ROOT}) or add that folder to PYTHONPATH.")


def test_missing_factory_function_lists_what_the_module_defines(tmp_path: Path) -> None:
    message = only_problem(write(tmp_path, entry(factory=f"{HERE}:resnet")))
    assert message.startswith(f"model 'mine' (entry 1): module '{HERE}' has no attribute 'resnet' for factory "
                              f"'{HERE}:resnet'. It defines: ")
    assert "residual" in message and "broken" in message
    assert message.endswith("Name the function or class that builds the model after the colon.")


def test_mismatched_weights_name_the_parameter_and_both_shapes(tmp_path: Path) -> None:
    save_weights(residual(classes=5), tmp_path / "five.safetensors")
    message = only_problem(write(tmp_path, entry(weights="five.safetensors")))
    assert message == (
        "model 'mine' (entry 1): the weights file five.safetensors does not fit the model: 'fc.weight' is [5, 8] in "
        "the file but [10, 8] in the model the factory builds (and 1 more: fc.bias). Check the factory's kwargs (the "
        "number of classes or channels, for example) against the model the weights were saved from.")
    (model,) = load(write(tmp_path, entry(weights="five.safetensors", kwargs={"classes": 5}, classes=CLASSES[:5])))
    assert model.graph.layer("fc").output_shape == [5]


def test_untraceable_model_gets_the_engines_sentence_and_line(tmp_path: Path) -> None:
    line = next(i for i, text in enumerate(Path(__file__).read_text().splitlines(), 1)
                if text.strip() == "if x.mean() > 0:")
    message = only_problem(write(tmp_path, entry(factory=f"{HERE}:Branchy")))
    assert message.startswith("model 'mine' (entry 1): Branchy cannot be traced into a layer graph by torch.fx: ")
    assert "control flow" in message and f"test_models_file.py:{line}: `if x.mean() > 0:`" in message
    assert message.endswith("write that part of forward without Python control flow on tensor values "
                            "(torch.where, for example).")


# Every other mistake.

def test_factory_that_raises_says_what_and_where(tmp_path: Path) -> None:
    message = only_problem(write(tmp_path, entry(factory=f"{HERE}:broken")))
    assert re.fullmatch(
        rf"model 'mine' \(entry 1\): calling factory '{HERE}:broken' with kwargs \{{\}} raised RuntimeError: this "
        r"factory is broken on purpose \(at .*tests/test_models_file\.py:\d+\)\. Fix the factory or its kwargs\.",
        message), message


def test_factory_kwargs_it_does_not_take_are_named_with_those_it_does(tmp_path: Path) -> None:
    message = only_problem(write(tmp_path, entry(kwargs={"clases": 3})))
    assert message == ("model 'mine' (entry 1): factory 'tests.test_models_file:residual' does not accept kwargs "
                       "{\"clases\": 3}: got an unexpected keyword argument 'clases'. It takes: classes.")


def test_factory_must_return_a_module(tmp_path: Path) -> None:
    message = only_problem(write(tmp_path, entry(factory=f"{HERE}:not_a_module")))
    assert message.startswith(f"model 'mine' (entry 1): factory '{HERE}:not_a_module' returned a int, not a "
                              "torch.nn.Module.")


def test_dependency_the_factorys_module_lacks_is_named(tmp_path: Path) -> None:
    (tmp_path / "needs_missing.py").write_text("import convscope_missing_dependency\n\ndef make():\n    pass\n")
    os.chdir(tmp_path)
    message = only_problem(write(tmp_path, entry(factory="needs_missing:make")))
    assert message.startswith("model 'mine' (entry 1): importing 'needs_missing' for factory 'needs_missing:make' "
                              "needs the module 'convscope_missing_dependency', which is not installed.")


def test_unknown_key_suggests_the_close_one_and_lists_them_all(tmp_path: Path) -> None:
    message = only_problem(write(tmp_path, entry(wieghts="w.pt")))
    assert message == ("model 'mine' (entry 1): unknown key 'wieghts'. Did you mean 'weights'? The known keys are: "
                       + ", ".join(KEYS) + ".")
    assert list(KEYS) == ["id", "factory", "kwargs", "weights", "input", "mean", "std", "classes", "name",
                          "description", "dataset", "framing", "samples"]


def test_every_mistake_in_every_entry_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(write(tmp_path, entry(classes=None, input=[3, 12]),
                           entry(id=7, mean="0.5", std=[0.2, 0.2, 0.0], framing="centre")))
    assert found == [
        "model 'mine' (entry 1): input must be [channels, height, width], three positive whole numbers such as "
        "input = [3, 224, 224]; it is [3, 12].",
        "model 'mine' (entry 1): 'classes' is missing. Add classes = [\"cat\", \"dog\"], or classes = \"classes.txt\" "
        "with one name per line.",
        "entry 2: id 7 cannot name a model in URLs. Use up to 64 letters, digits, '.', '_' or '-', starting with a "
        "letter or digit, such as id = \"my-resnet\".",
        "entry 2: mean must be a list of numbers, one per input channel, such as mean = [0.485, 0.456, 0.406]; it is "
        "\"0.5\".",
        "entry 2: std [0.2, 0.2, 0.0] has a value that is not above 0: every input is divided by it.",
        "entry 2: framing \"centre\" is not one ConvScope knows. Use one of: mnist-digit, mnist-object, resize-crop "
        "(resize-crop, the default, fits photos; the mnist ones frame a light object on black)."]


@pytest.mark.parametrize("missing", ["id", "factory", "input", "mean", "std", "classes"])
def test_each_required_field_is_asked_for_with_an_example(tmp_path: Path, missing: str) -> None:
    message = only_problem(write(tmp_path, entry(**{missing: None})))
    assert re.fullmatch(rf"(model 'mine' \(entry 1\)|entry 1): '{missing}' is missing\. Add {missing} = .+\.", message)


@pytest.mark.parametrize(("fields", "expected"), [
    ({"input": [2, 12, 12], "mean": [0.5] * 2, "std": [0.5] * 2},
     "input has 2 channels; ConvScope feeds images as 1 channel (grey) or 3 (RGB)."),
    ({"input": [3, 0, 12]}, "input must be [channels, height, width], three positive whole numbers"),
    ({"input": [3, 12.0, 12]}, "input must be [channels, height, width]"),
    ({"mean": [0.5]}, "mean has 1 value(s) but input has 3 channel(s). Give one mean per channel, such as "
                      "mean = [0.5, 0.5, 0.5]."),
    ({"std": [0.5, 0.5, 0.5, 0.5]}, "std has 4 value(s) but input has 3 channel(s)."),
    ({"mean": [0.5, True, 0.5]}, "mean must be a list of numbers"),
    ({"factory": "tests.test_models_file.residual"}, "factory \"tests.test_models_file.residual\" is not "
                                                     "\"package.module:callable\"."),
    ({"kwargs": [1, 2]}, "kwargs must be a table of keyword arguments, such as kwargs = { num_classes = 10 }"),
    ({"weights": "w.onnx"}, "weights file 'w.onnx' is neither .safetensors nor a .pt/.pth state dict."),
    ({"classes": []}, "classes must list the class names as non-empty strings"),
    ({"classes": ["a", 2]}, "classes must list the class names as non-empty strings"),
    ({"classes": "nowhere.txt"}, "classes file "),
    ({"name": 3}, "name must be a string in double quotes; it is 3."),
    ({"id": "run-1234"}, "id 'run-1234' starts with 'run-', which names the training lab's models."),
    ({"id": "my model"}, "id \"my model\" cannot name a model in URLs."),
    ({"samples": "no-such-folder"}, "samples folder "),
    ({"samples": ["missing.png"]}, "sample "),
    ({"samples": ["notes.txt"]}, "is not an image file ConvScope reads"),
    ({"samples": [{"path": "a.png"}]}, "each sample must be an image path, such as \"cat.jpg\", or a table"),
    ({"samples": 3}, "samples must be a folder, such as samples = \"samples\", or a list of image paths"),
])
def test_ill_typed_or_inconsistent_field_says_what_is_expected(tmp_path: Path, fields: dict[str, Any],
                                                               expected: str) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    message = only_problem(write(tmp_path, entry(**fields)))
    assert expected in message, message
    assert message.startswith(("model '", "entry 1: "))


def test_weights_file_that_does_not_exist_says_where_it_was_looked_for(tmp_path: Path) -> None:
    message = only_problem(write(tmp_path, entry(weights="gone.safetensors")))
    assert message == (f"model 'mine' (entry 1): weights file {tmp_path / 'gone.safetensors'} does not exist. Weights "
                       f"paths are relative to the models file's folder ({tmp_path}).")


def test_state_dict_with_missing_and_unexpected_keys_names_them(tmp_path: Path) -> None:
    state = residual().state_dict()
    state["head.weight"], state["head.bias"] = state.pop("fc.weight"), state.pop("fc.bias")
    torch.save(state, tmp_path / "renamed.pt")
    message = only_problem(write(tmp_path, entry(weights="renamed.pt")))
    assert message == (
        "model 'mine' (entry 1): the weights file renamed.pt does not fit the model: it lacks 2 of the model's "
        "tensors (fc.weight, fc.bias) and has 2 the model has no place for (head.weight, head.bias). Check that the "
        "factory and its kwargs build the architecture these weights were saved from.")


def test_data_parallel_prefix_is_recognised(tmp_path: Path) -> None:
    torch.save({f"module.{k}": v for k, v in residual().state_dict().items()}, tmp_path / "dp.pth")
    message = only_problem(write(tmp_path, entry(weights="dp.pth")))
    assert "and 11 more" in message
    assert message.endswith("Its names start with 'module.': it was saved from nn.DataParallel or "
                            "DistributedDataParallel; save model.module.state_dict() instead.")


def test_batch_norm_step_counters_may_be_missing(tmp_path: Path) -> None:
    state = {k: v for k, v in residual().state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, tmp_path / "lean.safetensors")
    (model,) = load(write(tmp_path, entry(weights="lean.safetensors")))
    assert torch.equal(params(model)["bn1.running_var"], state["bn1.running_var"])


class Boom:
    """Unpickling this would create a file: proof that ConvScope never unpickles arbitrary objects."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_pt_file_is_read_with_weights_only_never_as_a_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    torch.save({"fc.weight": Boom(marker)}, tmp_path / "evil.pt")
    message = only_problem(write(tmp_path, entry(weights="evil.pt")))
    assert not marker.exists()
    assert message == (
        f"model 'mine' (entry 1): {tmp_path / 'evil.pt'} holds more than tensors (it holds a pickled io.open), "
        "and ConvScope loads .pt/.pth files only with torch.load(weights_only=True), never as an arbitrary pickle. "
        "Save just the weights: torch.save(model.state_dict(), path) or "
        "safetensors.torch.save_file(model.state_dict(), path).")
    torch.save(residual(), tmp_path / "whole.pt")  # a whole pickled model is refused too
    assert "holds more than tensors (it holds a pickled tests.nets.ResidualNet)" in only_problem(
        write(tmp_path, entry(weights="whole.pt")))
    with open(tmp_path / "raw.pth", "wb") as f:
        pickle.dump(Boom(marker), f)
    assert "raw.pth cannot be read by torch.load (" in only_problem(write(tmp_path, entry(weights="raw.pth")))
    assert not marker.exists()


def test_training_checkpoint_is_told_apart_from_a_state_dict(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "state_dict": residual().state_dict()}, tmp_path / "checkpoint.pt")
    message = only_problem(write(tmp_path, entry(weights="checkpoint.pt")))
    assert message == (f"model 'mine' (entry 1): {tmp_path / 'checkpoint.pt'} is not a state dict of named tensors; "
                       "it holds epoch, state_dict. It looks like a training checkpoint: save checkpoint['state_dict'] "
                       "alone.")


def test_corrupt_safetensors_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors at all")
    message = only_problem(write(tmp_path, entry(weights="bad.safetensors")))
    assert message.startswith(f"model 'mine' (entry 1): {tmp_path / 'bad.safetensors'} cannot be read as safetensors: ")
    (tmp_path / "bad.pt").write_bytes(b"not a torch file either")
    message = only_problem(write(tmp_path, entry(weights="bad.pt")))
    assert message.startswith(f"model 'mine' (entry 1): {tmp_path / 'bad.pt'} cannot be read by torch.load (")


def test_class_count_must_equal_the_measured_outputs(tmp_path: Path) -> None:
    message = only_problem(write(tmp_path, entry(classes=["yes", "no", "maybe"])))
    assert message == ("model 'mine' (entry 1): the model outputs 10 class scores, but 'classes' names 3 classes. "
                       "Give one class name per output, in order (or build the model for that many classes, for "
                       "example with kwargs).")
    (tmp_path / "names.txt").write_text("a\nb\n")
    message = only_problem(write(tmp_path, entry(classes="names.txt")))
    assert "but classes file 'names.txt' names 2 classes" in message


def test_classes_file_with_an_empty_line_says_which(tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("a\n\nb\n\n")
    message = only_problem(write(tmp_path, entry(classes="names.txt")))
    assert message == (f"model 'mine' (entry 1): classes file {tmp_path / 'names.txt'}: line 2 is empty. Write one "
                       "class name per line, in the order of the model's outputs.")


def test_model_that_cannot_take_its_input_shape(tmp_path: Path) -> None:
    message = only_problem(write(tmp_path, entry(factory="convscope.models.lenet:LeNet")))
    assert message.startswith("model 'mine' (entry 1): LeNet cannot run on an input of shape [3, 12, 12]")
    assert message.endswith("Check that input [3, 12, 12] is the [C, H, W] the model was built for, and that forward "
                            "returns one tensor of class scores [1, K].")


def test_sample_labels_must_be_a_class_or_an_index(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    message = only_problem(write(tmp_path, entry(samples=[{"file": "a.png", "label": "c10"}])))
    assert message == ("model 'mine' (entry 1): sample a.png has label \"c10\", which is neither one of the classes "
                       "nor an index from 0 to 9. Leave the label out if it is not known.")


def test_samples_that_would_share_an_id_or_are_not_images(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "pics" / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "pics" / "a.jpg")
    message = only_problem(write(tmp_path, entry(samples="pics")))
    assert "would both be called 'a'. Rename one: a sample's id is its file name without the extension." in message
    (tmp_path / "fake.png").write_text("hello")
    message = only_problem(write(tmp_path, entry(samples=["fake.png"])))
    assert message.startswith(f"model 'mine' (entry 1): sample 'fake' ({tmp_path / 'fake.png'}) cannot be used: This "
                              "looks like text, not an image ConvScope can read.")


def test_duplicate_ids_in_the_file_and_against_the_builtins(tmp_path: Path) -> None:
    found = problems(write(tmp_path, entry(), entry(id="mnist-lenet"), entry()), taken=("mnist-lenet",))
    assert found == [
        "model 'mnist-lenet' (entry 2): id 'mnist-lenet' is already a built-in model's. Choose another id, or serve "
        "only the models file's models (convscope serve --no-builtins).",
        "model 'mine' (entry 3): id 'mine' is already entry 1's. Give each model its own id."]
    path = write(tmp_path, entry(id="mnist-lenet"))
    with pytest.raises(ModelsFileError, match="already a built-in model's"):
        load_registry(Settings(models_file=path))
    assert [m.id for m in load_registry(Settings(models_file=path, builtins=False))] == ["mnist-lenet"]


@pytest.mark.parametrize(("text", "expected"), [
    ("[[models]]\nid = mine\n", "this is not valid TOML: Invalid value (at line 2, column 6). Fix the syntax there"),
    ("[models]\nid = \"mine\"\n", "'models' must be an array of tables: write [[models]], with two brackets"),
    ("title = \"mine\"\n", "unknown top-level key 'title'. A models file holds only [[models]] tables"),
    ("", "it lists no models. Add a [[models]] table for each model"),
])
def test_a_file_that_is_not_a_models_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text)
    assert any(expected in problem for problem in problems(path))


def test_a_models_file_that_does_not_exist(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml") == [f"there is no such file (relative paths start from {ROOT})."]


def test_the_readmes_models_files_use_only_known_keys() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        for table in tomllib.loads(block)["models"]:
            assert set(table) <= set(KEYS) and {"id", "factory", "input", "mean", "std", "classes"} <= set(table)
    example = tomllib.loads((ROOT / "examples" / "resnet18.toml").read_text())
    assert tomllib.loads(blocks[0])["models"][0]["factory"] == example["models"][0]["factory"]
