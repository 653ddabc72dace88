"""A weights file (safetensors, or a torch.save'd state dict read with weights_only=True) put into a
module, after checking that every tensor has a place of the right shape: never an arbitrary pickle."""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")
SHOWN = 5  # names listed before "and N more"
# Batch norm's step counter: only used in training, absent from some older or hand-made state dicts.
OPTIONAL = "num_batches_tracked"
SAVE_STATE_DICT = "torch.save(model.state_dict(), path) or safetensors.torch.save_file(model.state_dict(), path)"


class WeightsError(Exception):
    """A weights file that cannot be read, or does not fit the module: a sentence with the fix."""


def load_weights(module: nn.Module, path: Path) -> None:
    """Read the state dict at path and load it into module, or WeightsError saying what does not fit."""
    state = read_state_dict(path)
    check_fits(module, state, path.name)
    try:
        module.load_state_dict(state, strict=False)  # strict's checks are check_fits', with clearer words
    except Exception as exc:
        raise WeightsError(f"loading {path.name} into the model failed: {_first_line(exc)}.") from None


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """{name: tensor} from a .safetensors file, or from a .pt/.pth file that holds only tensors."""
    if path.suffix.lower() == ".safetensors":
        try:
            return load_file(path, device="cpu")
        except Exception as exc:
            raise WeightsError(f"{path} cannot be read as safetensors: {_first_line(exc)}. Save the weights with "
                               "safetensors.torch.save_file(model.state_dict(), path).") from None
    try:
        with warnings.catch_warnings():  # e.g. on pickle protocols torch.save does not write: the error says more
            warnings.simplefilter("ignore", UserWarning)
            loaded = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if isinstance(exc, pickle.UnpicklingError) and found:
            raise WeightsError(f"{path} holds more than tensors (it holds a pickled {found.group(1)}), and ConvScope "
                               "loads .pt/.pth files only with torch.load(weights_only=True), never as an arbitrary "
                               f"pickle. Save just the weights: {SAVE_STATE_DICT}.") from None
        refused = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(exc))
        why = refused.group(1).rstrip(".") if refused else f"{type(exc).__name__}: {_first_line(exc)}"
        raise WeightsError(f"{path} cannot be read by torch.load ({why}): it is not a file torch.save wrote, or "
                           f"it is damaged. Save the weights with {SAVE_STATE_DICT}.") from None
    return _as_state_dict(loaded, path)


def _as_state_dict(loaded: object, path: Path) -> dict[str, Tensor]:
    if isinstance(loaded, Mapping) and loaded and all(isinstance(k, str) and isinstance(v, Tensor)
                                                      for k, v in loaded.items()):
        return dict(loaded)
    if isinstance(loaded, Mapping):
        nested = [k for k, v in loaded.items()
                  if isinstance(v, Mapping) and any(isinstance(t, Tensor) for t in v.values())]
        keys = names_list([str(k) for k in loaded]) or "nothing"
        hint = (f" It looks like a training checkpoint: save checkpoint['{nested[0]}'] alone." if nested
                else f" Save the weights with {SAVE_STATE_DICT}.")
        raise WeightsError(f"{path} is not a state dict of named tensors; it holds {keys}.{hint}")
    raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a state dict. Save the weights with "
                       f"{SAVE_STATE_DICT}.")


def check_fits(module: nn.Module, state: Mapping[str, Tensor], file: str) -> None:
    """Every tensor of the module is in state with its shape, and state has nothing else."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL)]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} of the model's tensors ({names_list(missing)})")
        if unexpected:
            parts.append(f"has {len(unexpected)} the model has no place for ({names_list(unexpected)})")
        stripped = {k.removeprefix("module.") for k in unexpected}
        if unexpected and all(k.startswith("module.") for k in unexpected) and set(missing) <= stripped:
            fix = ("Its names start with 'module.': it was saved from nn.DataParallel or DistributedDataParallel; "
                   "save model.module.state_dict() instead.")
        else:
            fix = "Check that the factory and its kwargs build the architecture these weights were saved from."
        raise WeightsError(f"the weights file {file} does not fit the model: it {' and '.join(parts)}. {fix}")
    wrong = [(k, list(state[k].shape), list(v.shape)) for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if wrong:
        name, saved, built = wrong[0]
        more = f" (and {len(wrong) - 1} more: {names_list([k for k, _, _ in wrong[1:]])})" if len(wrong) > 1 else ""
        raise WeightsError(f"the weights file {file} does not fit the model: '{name}' is {saved} in the file but "
                           f"{built} in the model the factory builds{more}. Check the factory's kwargs (the number "
                           "of classes or channels, for example) against the model the weights were saved from.")


def names_list(names: list[str]) -> str:
    """'a, b, c' or 'a, b, c, d, e and 7 more'."""
    shown = ", ".join(names[:SHOWN])
    return shown if len(names) <= SHOWN else f"{shown} and {len(names) - SHOWN} more"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__).rstrip(".")
