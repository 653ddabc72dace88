"""ConvScope's tests; they mirror app/ (imported as convscope)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: README, pyproject.toml, examples, the training tools
