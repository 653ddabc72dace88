"""The files that ship inside the package: pages, static files, built-in models, data subsets.

Found with importlib.resources, never by a path relative to the checkout, so an installed wheel and
an editable checkout serve the same files. In the repository they are the top-level folders
(pyproject.toml maps them into the package):

| package                | folder        |
|------------------------|---------------|
| convscope.models       | models/       |
| convscope.static       | static/       |
| convscope.templates    | templates/    |
| convscope.data         | data/         |
"""

from importlib.resources import files
from pathlib import Path
from typing import Literal

Folder = Literal["models", "static", "templates", "data"]


def folder(name: Folder) -> Path:
    """The folder of the package's `name` files (a real directory: ConvScope is never run from a zip)."""
    return Path(str(files(f"convscope.{name}")))
