"""Settings (app/config.py): the README's table, the environment, `.env`, bad values, lists and empty values."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from convscope.config import PREFIX, Settings, get_settings, settings_problem
from convscope.resources import folder
from tests import ROOT

# Defaults computed when Settings is built, which the README describes in words: the words it must use.
DESCRIBED = {"models_dir": "`models/`", "subsets_dir": "`data/`", "compute_slots": "number of cores",
             "data_dir": "per-user data folder"}  # platformdirs.user_data_dir("convscope")


def variable(field: str) -> str:
    return PREFIX + field.upper()


def settings_table() -> dict[str, str]:
    """The README's settings table: each variable with its default column."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        match = re.fullmatch(r"\| `(\w+)` \| ([^|]+) \| [^|]+ \|", row)
        assert match, f"a settings row the test cannot read: {row}"
        table[match[1]] = match[2]
    assert len(table) == len(rows), "a variable is listed twice"
    return table


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from outside (CONVSCOPE_TORCH_THREADS, the suite's FASHION_MNIST_DIR, a .env in the
    checkout): each test starts in an empty folder with none set."""
    for name in Settings.model_fields:
        monkeypatch.delenv(variable(name), raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_readme_lists_exactly_the_settings() -> None:
    assert set(settings_table()) == {variable(name) for name in Settings.model_fields}


def test_the_readme_gives_each_settings_default() -> None:
    table = settings_table()
    computed = {name for name, field in Settings.model_fields.items() if field.default_factory is not None}
    assert computed == set(DESCRIBED)
    for name, field in Settings.model_fields.items():
        cell = table[variable(name)]
        if name in DESCRIBED:
            assert DESCRIBED[name] in cell, (name, cell)
        elif isinstance(field.default, bool):
            assert cell == ("1" if field.default else "0"), (name, cell)
        elif isinstance(field.default, int):
            assert int(cell.split()[0]) == field.default, (name, cell)
        elif field.default in (None, ()):
            assert cell == "none", (name, cell)
        else:
            assert cell == f"`{field.default}`", (name, cell)


def test_the_computed_defaults_are_the_packages_folders_and_the_cores() -> None:
    settings = Settings()
    assert (settings.models_dir, settings.subsets_dir) == (folder("models"), folder("data"))
    assert settings.compute_slots == (os.cpu_count() or 1)


def test_every_setting_has_a_description_for_people() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and field.description.endswith("."), name


def test_environment_variables_are_read_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().max_queued == 64
    monkeypatch.setenv("CONVSCOPE_MAX_QUEUED", "16")
    monkeypatch.setenv("CONVSCOPE_TORCH_THREADS", " 3 ")
    monkeypatch.setenv("CONVSCOPE_MODELS_FILE", "mine.toml")
    monkeypatch.setenv("CONVSCOPE_RUN_CACHE_BYTES", "0")  # 0 has a meaning: keep none
    monkeypatch.setenv("CONVSCOPE_TRAINING_NICE", "0")  # and here: lower no priority
    settings = get_settings()
    assert (settings.max_queued, settings.torch_threads, settings.models_file) == (16, 3, Path("mine.toml"))
    assert (settings.run_cache_bytes, settings.training_nice) == (0, 0)
    assert get_settings() is not settings


@pytest.mark.parametrize(("value", "expected"), [
    ("0", False), ("false", False), ("no", False), ("off", False), ("OFF", False),
    ("1", True), ("true", True), ("yes", True), ("on", True), ("", True), (" ", True)])
def test_builtins_takes_yes_and_no_words_and_empty_means_the_default(
        monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CONVSCOPE_BUILTINS", value)
    assert get_settings().builtins is expected


def test_a_dotenv_file_in_the_current_folder_is_read_and_the_environment_wins(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# ConvScope\nCONVSCOPE_MAX_QUEUED=16\nCONVSCOPE_TRAINING_SLOTS=2\nCONVSCOPE_CORS_ORIGINS=https://a.example\n"
        "CONVSCOPE_NOT_A_SETTING=1\nUNRELATED=x\n", encoding="utf-8")
    monkeypatch.setenv("CONVSCOPE_TRAINING_SLOTS", "3")
    settings = get_settings()
    assert (settings.max_queued, settings.training_slots, settings.cors_origins) == (16, 3, ("https://a.example",))
    monkeypatch.chdir(tmp_path.parent)  # another folder: its own .env (none), not this one
    assert get_settings().max_queued == 64


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSCOPE_MAX_QUEUED", "16")
    assert Settings(max_queued=0).max_queued == 0
    with pytest.raises(ValidationError):
        Settings().max_queued = 1  # type: ignore[misc]  # frozen: one object, read by every thread


@pytest.mark.parametrize(("field", "value"), [
    ("max_queued", "lots"), ("torch_threads", "0"), ("compute_slots", "-1"), ("training_slots", "0"),
    ("max_upload_bytes", "0"), ("run_cache_bytes", "-1"), ("training_nice", "20"), ("builtins", "maybe")])
def test_a_bad_value_is_a_validation_error_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, field: str, value: str) -> None:
    monkeypatch.setenv(variable(field), value)
    with pytest.raises(ValidationError) as info:
        get_settings()
    assert [error["loc"] for error in info.value.errors()] == [(field,)]
    assert f"\n- {variable(field)}={value!r}: " in settings_problem(info.value)


def test_a_bad_value_in_dotenv_is_named_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CONVSCOPE_MAX_QUEUED=lots\n", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        get_settings()
    assert settings_problem(info.value).splitlines()[1] == (
        "- CONVSCOPE_MAX_QUEUED='lots': input should be a valid integer, unable to parse string as an integer.")


def test_cors_origins_are_comma_separated_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_settings().cors_origins == ()
    monkeypatch.setenv("CONVSCOPE_CORS_ORIGINS", " https://a.example, http://localhost:5173,,")
    assert get_settings().cors_origins == ("https://a.example", "http://localhost:5173")
    monkeypatch.setenv("CONVSCOPE_CORS_ORIGINS", '["https://a.example"]')
    assert get_settings().cors_origins == ('["https://a.example"]',)
    monkeypatch.setenv("CONVSCOPE_CORS_ORIGINS", "")
    assert get_settings().cors_origins == ()
    assert Settings(cors_origins=("https://b.example",)).cors_origins == ("https://b.example",)


def test_empty_values_mean_the_default_but_an_empty_fashion_folder_means_the_subset(
        monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = get_settings()
    assert (defaults.models_file, defaults.fashion_mnist_dir) == (None, Path("/usr/share/datasets/fashion-mnist"))
    for name in ("MODELS_FILE", "MODELS_DIR", "DATA_DIR", "MAX_QUEUED", "COMPUTE_SLOTS"):
        monkeypatch.setenv(PREFIX + name, "")
    monkeypatch.setenv("CONVSCOPE_FASHION_MNIST_DIR", "")
    settings = get_settings()
    assert settings.fashion_mnist_dir is None
    assert settings.model_dump(exclude={"fashion_mnist_dir"}) == defaults.model_dump(exclude={"fashion_mnist_dir"})


@pytest.mark.parametrize(("command", "status"), [
    (["-m", "uvicorn", "convscope.main:app", "--port", "1"], 1), (["-m", "convscope.cli", "serve", "--port", "1"], 2)])
def test_the_server_stops_on_a_bad_setting_with_a_sentence_and_no_traceback(
        tmp_path: Path, command: list[str], status: int) -> None:
    env = {**os.environ, "CONVSCOPE_MAX_QUEUED": "lots", "CONVSCOPE_TORCH_THREADS": "0"}
    done = subprocess.run([sys.executable, *command], check=False, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == status, (done.stdout, done.stderr)
    assert "- CONVSCOPE_MAX_QUEUED='lots': input should be a valid integer" in done.stderr
    assert "- CONVSCOPE_TORCH_THREADS='0': input should be greater than or equal to 1." in done.stderr
    assert "Traceback" not in done.stderr
