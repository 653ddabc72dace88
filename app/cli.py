"""The `convscope` command: `serve` the built-in and your own models, or `check` them.

    convscope serve [--models-file my-models.toml] [--host 127.0.0.1] [--port 8000] [--no-builtins] [--threads N]
    convscope serve --model mypkg.net:make_net --input 3,224,224 [--weights net.safetensors]
                    [--classes classes.txt | --classes cat,dog] [--mean 0.5,0.5,0.5 --std 0.25,0.25,0.25] [--name Net]
    convscope check (the same model options)
    convscope worker [--slots N]              (trains the lab's queued runs; see CONVSCOPE_REDIS_URL)
    convscope --version                       (python -m convscope ... is the same command)

Your settings (CONVSCOPE_* variables, .env) and models are checked completely before the server
starts: any mistake is printed (no traceback) and the command exits with status 2. `--model` and
`--models-file` factories are imported from the current folder too.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from convscope import __version__
from convscope.config import Settings, settings_problem
from convscope.errors import ModelsFileError

if TYPE_CHECKING:
    from convscope.registry import Registry

USAGE_ERROR = 2  # as argparse exits on a bad command line


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="convscope", description="Look inside convolutional neural networks.")
    top.add_argument("--version", action="version", version=f"convscope {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="{serve,check,worker}")
    serve = commands.add_parser("serve", help="serve the page and the API", description=(
        "Serve the page and the REST API with the built-in models and your own."))
    check = commands.add_parser("check", help="check your models and summarise them", description=(
        "Load your models as `serve` would, and print one line per model."))
    worker = commands.add_parser("worker", help="train the training lab's queued runs", description=(
        "Take the training lab's runs off the job queue and train them, until stopped (Ctrl-C or SIGTERM "
        "cancel the runs in hand). Every server and worker sharing a data folder (on one machine) or "
        "CONVSCOPE_REDIS_URL and CONVSCOPE_DATABASE_URL (on several) shares the queue; set "
        "CONVSCOPE_TRAINING_IN_SERVER=0 on the servers to leave all training to workers."))
    worker.add_argument("--slots", type=_positive, help="runs trained at once (default: $CONVSCOPE_TRAINING_SLOTS "
                        "or 1); each takes a core")
    for command in (serve, check):
        _model_options(command)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    serve.add_argument("--threads", type=_positive, help="PyTorch intra-op threads per request "
                       "(default: $CONVSCOPE_TORCH_THREADS or 1; 2 suits a ResNet-18 at 224×224 on a free CPU)")
    return top


def _model_options(command: argparse.ArgumentParser) -> None:
    """Where your models come from: a models file, or one model named on the command line."""
    command.add_argument("--models-file", type=Path, help="a TOML file of your own models (default: "
                         "$CONVSCOPE_MODELS_FILE, if set)")
    command.add_argument("--no-builtins", action="store_true", help="leave out the built-in models")
    one = command.add_argument_group("one model without a models file")
    one.add_argument("--model", metavar="MODULE:FACTORY", help="the function or class that builds your model, "
                     "such as mypkg.net:make_net")
    one.add_argument("--input", type=_numbers(int), metavar="C,H,W", help="the input it takes: channels (1 or 3), "
                     "height, width")
    one.add_argument("--weights", help="a .safetensors file, or a .pt/.pth state dict (default: as the factory "
                     "made them)")
    one.add_argument("--classes", metavar="FILE or A,B,C", help="a text file with one class name per line, or the "
                     "names separated by commas (default: the class indices 0, 1, ...)")
    one.add_argument("--mean", type=_numbers(float), metavar="M1,M2,M3", help="per channel, for pixels in [0, 1] "
                     "(default: 0, no normalisation)")
    one.add_argument("--std", type=_numbers(float), metavar="S1,S2,S3", help="per channel (default: 1)")
    one.add_argument("--name", help="a title for people; its id in URLs is made from it (default: the module's name)")


def _numbers(kind: type[int] | type[float]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {kind.__name__}s") from None
    return parse


def model_table(args: argparse.Namespace) -> dict[str, Any] | None:
    """The [[models]] table that --model and its options describe (None without --model)."""
    given = [f"--{name}" for name in ("input", "weights", "classes", "mean", "std", "name")
             if getattr(args, name, None) is not None]
    if args.model is None:
        if given:
            verb = "describes" if len(given) == 1 else "describe"
            raise UsageError(f"{', '.join(given)} {verb} the model of --model MODULE:FACTORY, which is missing.")
        return None
    if args.input is None:
        raise UsageError("--model needs --input C,H,W: the channels, height and width the model takes.")
    channels = args.input[0]
    table: dict[str, Any] = {"id": _model_id(args.name or args.model.partition(":")[0].rpartition(".")[2]),
                             "factory": args.model, "input": args.input,
                             "mean": args.mean or [0.0] * channels, "std": args.std or [1.0] * channels}
    if args.mean is None and args.std is None:
        logging.getLogger("convscope").info("No --mean and --std: the model takes pixels scaled to [0, 1] as they are.")
    if args.name:
        table["name"] = args.name
    if args.weights:
        table["weights"] = args.weights
    if args.classes:
        table["classes"] = args.classes if Path(args.classes).is_file() else args.classes.split(",")
    return table


def _model_id(text: str) -> str:
    """An id for URLs made from a name: letters, digits, '.', '_' and '-' kept, the rest '-'."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:64]
    return slug or "model"


class UsageError(Exception):
    """A command line that names no model or half of one: a sentence with the fix."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's (and .env's) settings with the command line's choices over them."""
    chosen: dict[str, Any] = {}  # pydantic-settings: keyword arguments win over the environment
    if getattr(args, "no_builtins", False):
        chosen["builtins"] = False
    if getattr(args, "models_file", None) is not None:
        chosen["models_file"] = args.models_file
    if getattr(args, "threads", None) is not None:
        chosen["torch_threads"] = args.threads
    if getattr(args, "slots", None) is not None:
        chosen["training_slots"] = args.slots
    return Settings(**chosen)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; the exit status: 0, or 2 for a bad command line, setting or models file."""
    args = parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(settings_problem(exc), file=sys.stderr)
        return USAGE_ERROR
    logging.basicConfig(level=logging.INFO if args.command in ("serve", "worker") else logging.WARNING,
                        format="%(levelname)s:     %(message)s")  # uvicorn's look
    if args.command == "worker":
        return work(settings)
    try:
        table = model_table(args)
    except UsageError as exc:
        print(f"convscope {args.command}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    # Imported here: torch takes a second or two, and `convscope --help` should not wait for it.
    from convscope.models_file import COMMAND_LINE, load_registry, summary_line
    from convscope.registry import set_threads

    set_threads(settings.torch_threads)
    start = time.perf_counter()
    try:
        registry = load_registry(settings, [] if table is None else [table])
    except ModelsFileError as exc:
        print(exc, file=sys.stderr)
        return USAGE_ERROR
    if not len(registry):
        print("There is no model to serve: give --model or --models-file, or leave out --no-builtins.",
              file=sys.stderr)
        return USAGE_ERROR
    seconds = time.perf_counter() - start
    if args.command == "check":
        own = [m for m in registry if "models_file" in m.card]
        for model in own:
            print(summary_line(model))
        where = " and ".join(str(s) for s in (settings.models_file, table and COMMAND_LINE) if s)
        print(f"{where or 'the built-in models'}: {len(own)} model(s) ready to serve, loaded in {seconds:.1f} s.")
        return 0
    return serve(settings, registry, args.host, args.port)


def serve(settings: Settings, registry: Registry, host: str, port: int) -> int:
    """Run uvicorn on an app that serves the models already loaded, until it is told to stop."""
    import uvicorn

    from convscope.main import create_app

    names = ", ".join(m.id for m in registry)
    logging.getLogger("convscope").info("Serving %s on http://%s:%d", names, host, port)
    uvicorn.run(create_app(settings, registry), host=host, port=port)
    return 0


def work(settings: Settings) -> int:
    """Train queued runs in `training_slots` threads until SIGINT or SIGTERM; then cancel the runs in
    hand (their records say why) and stop."""
    import signal
    import threading

    from convscope.config import database_url
    from convscope.database.connect import open_database
    from convscope.registry import Registry, set_threads
    from convscope.training.datasets import Catalogue
    from convscope.training.jobs import queue_for
    from convscope.training.records import RunRecords
    from convscope.training.runs import WORKER, RunManager

    set_threads(settings.torch_threads)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    records = RunRecords(open_database(database_url(settings)))
    manager = RunManager(settings, Registry(), Catalogue(settings.subsets_dir, settings.fashion_mnist_dir), records,
                         queue=queue_for(settings), serve_models=False)
    where = settings.redis_url or settings.data_dir
    logging.getLogger("convscope").info("Worker %s training %d run(s) at once from %s", WORKER,
                                        settings.training_slots, where)
    stop.wait()
    logging.getLogger("convscope").info("Worker %s stopping: cancelling the runs in hand", WORKER)
    manager.shutdown()
    records.engine.dispose()
    return 0


if __name__ == "__main__":  # python -m convscope.cli (python -m convscope: __main__.py)
    sys.exit(main())
