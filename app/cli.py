"""The `convscope` command: `serve` the built-in and your own models, or `check` a models file.

    convscope serve --models-file my-models.toml [--host 127.0.0.1] [--port 8000] [--no-builtins] [--threads N]
    convscope check --models-file my-models.toml

A models file is checked completely before the server starts: any mistake is printed (no
traceback) and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Settings, get_settings
from app.errors import ModelsFileError

if TYPE_CHECKING:
    from app.registry import Registry

USAGE_ERROR = 2  # as argparse exits on a bad command line


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="convscope", description="Look inside convolutional neural networks.")
    commands = top.add_subparsers(dest="command", required=True, metavar="{serve,check}")
    serve = commands.add_parser("serve", help="serve the page and the API", description=(
        "Serve the page and the REST API with the built-in models and those of a models file."))
    serve.add_argument("--models-file", type=Path, help="a TOML file of your own models (default: "
                       "$CONVSCOPE_MODELS_FILE, if set)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    serve.add_argument("--no-builtins", action="store_true", help="serve only the models file's models")
    serve.add_argument("--threads", type=_positive, help="PyTorch intra-op threads per request "
                       "(default: $CONVSCOPE_TORCH_THREADS or 1; 2 suits a ResNet-18 at 224×224 on a free CPU)")
    check = commands.add_parser("check", help="check a models file and summarise its models", description=(
        "Load every model of a models file as `serve` would, and print one line per model."))
    check.add_argument("--models-file", type=Path, required=True, help="the TOML file to check")
    check.add_argument("--no-builtins", action="store_true",
                       help="do not compare ids with the built-in models' (as serve --no-builtins)")
    return top


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the command line's choices over them."""
    settings = get_settings()
    threads = getattr(args, "threads", None)
    return dataclasses.replace(
        settings, builtins=settings.builtins and not args.no_builtins,
        models_file=settings.models_file if args.models_file is None else args.models_file,
        torch_threads=settings.torch_threads if threads is None else threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; the exit status: 0, or 2 for a bad command line or models file."""
    args = parser().parse_args(argv)
    settings = settings_from(args)
    logging.basicConfig(level=logging.INFO if args.command == "serve" else logging.WARNING,
                        format="%(levelname)s:     %(message)s")  # uvicorn's look
    # Imported here: torch takes a second or two, and `convscope --help` should not wait for it.
    from app.models_file import load_registry, summary_line
    from app.registry import set_threads

    set_threads(settings.torch_threads)
    start = time.perf_counter()
    try:
        registry = load_registry(settings)
    except ModelsFileError as exc:
        print(exc, file=sys.stderr)
        return USAGE_ERROR
    if not len(registry):
        print("There is no model to serve: give a --models-file, or leave out --no-builtins.", file=sys.stderr)
        return USAGE_ERROR
    seconds = time.perf_counter() - start
    if args.command == "check":
        own = [m for m in registry if "models_file" in m.card]
        for model in own:
            print(summary_line(model))
        print(f"{settings.models_file}: {len(own)} model(s) ready to serve, loaded in {seconds:.1f} s.")
        return 0
    return serve(settings, registry, args.host, args.port)


def serve(settings: Settings, registry: Registry, host: str, port: int) -> int:
    """Run uvicorn on an app that serves the models already loaded, until it is told to stop."""
    import uvicorn

    from app.main import create_app

    names = ", ".join(m.id for m in registry)
    logging.getLogger("convscope").info("Serving %s on http://%s:%d", names, host, port)
    uvicorn.run(create_app(settings, registry), host=host, port=port)
    return 0


if __name__ == "__main__":  # python -m app.cli; the console script calls main() itself
    sys.exit(main())
