"""A model from "package.module:callable" and keyword arguments, every way that can fail in a sentence.

Modules are imported from the current directory too (put on sys.path), as `python -m` would: the
`convscope` script alone only has its own folder there.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

_SKIP = (os.path.dirname(torch.__file__), os.path.dirname(os.path.abspath(__file__)),
         os.path.dirname(importlib.__file__), "<frozen")  # frames that are not the user's code


class FactoryError(Exception):
    """The factory cannot be imported or called, or gives no nn.Module: a sentence with the fix."""


def build(factory: str, kwargs: dict[str, Any]) -> nn.Module:
    """factory(**kwargs) for factory = "package.module:callable" (the callable may be dotted: "mod:Class.make")."""
    module_name, _, attr = factory.partition(":")
    imported = _import(module_name, factory)
    found: Any = imported
    for part in attr.split("."):
        if not hasattr(found, part):
            names = sorted(n for n, v in vars(imported).items() if callable(v) and not n.startswith("_")
                           and getattr(v, "__module__", None) == imported.__name__)
            listed = f" It defines: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''}." if names else ""
            raise FactoryError(f"module '{module_name}' has no attribute '{attr}' for factory '{factory}'.{listed} "
                               "Name the function or class that builds the model after the colon.")
        found = getattr(found, part)
    if not callable(found):
        raise FactoryError(f"factory '{factory}' is a {type(found).__name__}, not something that can be called to "
                           "build a model. Name a function or an nn.Module class after the colon.")
    _check_kwargs(factory, found, kwargs)
    try:
        module = found(**kwargs)
    except Exception as exc:
        raise FactoryError(f"calling factory '{factory}' with kwargs {json.dumps(kwargs, default=str)} raised "
                           f"{type(exc).__name__}: {first_line(exc)}{_at(exc)}. Fix the factory or its kwargs."
                           ) from None
    if not isinstance(module, nn.Module):
        raise FactoryError(f"factory '{factory}' returned a {type(module).__name__}, not a torch.nn.Module. Name a "
                           "function that returns the model, or the model's class.")
    return module


def _import(module_name: str, factory: str) -> Any:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # modules written since start-up (tests, notebooks) are found
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise FactoryError(f"cannot import '{module_name}' for factory '{factory}': there is no module "
                               f"'{missing}'. Check the spelling, and run ConvScope from the folder that holds it "
                               f"(now {cwd}) or add that folder to PYTHONPATH.") from None
        raise FactoryError(f"importing '{module_name}' for factory '{factory}' needs the module '{missing}', which "
                           f"is not installed. Install it in the environment ConvScope runs in ({sys.prefix})."
                           ) from None
    except Exception as exc:
        raise FactoryError(f"importing '{module_name}' for factory '{factory}' failed with {type(exc).__name__}: "
                           f"{first_line(exc)}{_at(exc)}. Fix that module so that it imports.") from None


def _check_kwargs(factory: str, found: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Keyword arguments the factory does not take, named with those it does (when its signature says)."""
    try:
        signature = inspect.signature(found)
    except (TypeError, ValueError):
        return
    try:
        signature.bind_partial(**kwargs)
    except TypeError as exc:
        takes = [n for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise FactoryError(f"factory '{factory}' does not accept kwargs {json.dumps(kwargs, default=str)}: {exc}. "
                           f"It takes: {', '.join(takes) or 'no keyword arguments'}.") from None


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message, without its full stop."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__).rstrip(".")


def _at(exc: BaseException) -> str:
    """' (at file:line)' of the deepest frame outside ConvScope, torch and importlib: where the user's code failed."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_SKIP)]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
