"""The ASGI app: `uvicorn convscope.main:app`. Loads the models once, maps every error to a JSON sentence."""

import asyncio
import json
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from convscope.api import api_router, pages
from convscope.config import Settings, database_url, get_settings, settings_problem
from convscope.database.connect import open_database
from convscope.engine.cache import ForwardRunCache
from convscope.errors import ConvScopeError, ModelsFileError
from convscope.models_file import load_registry
from convscope.registry import Registry, set_threads
from convscope.resources import folder
from convscope.training.datasets import Catalogue
from convscope.training.jobs import queue_for
from convscope.training.records import RunRecords
from convscope.training.runs import RunManager

log = logging.getLogger("convscope")


async def convscope_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConvScopeError)
    body: dict[str, object] = {"detail": exc.detail}
    if exc.errors is not None:
        body["errors"] = exc.errors
    return JSONResponse(body, status_code=exc.status_code)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own parameter checks: a sentence in `detail`, the field list in `errors`."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"] if p not in ("query", "path", "body")) or "request"
    errors = json.loads(json.dumps(exc.errors(), default=str))
    return JSONResponse({"detail": f"'{where}': {first['msg']}.", "errors": errors}, status_code=422)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged in full, answered with a sentence; the server keeps serving."""
    log.exception("Unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "Something went wrong inside ConvScope; this is a bug, please report it."},
                        status_code=500)


def on_exit_signals(callback: Callable[[], None]) -> Callable[[], None]:
    """Also run `callback` on the event loop when the server is told to stop (SIGINT, SIGTERM), before
    it waits for open connections: training event streams end once their runs are cancelled, so they
    cannot hold a graceful shutdown open. Returns the function that puts the old handlers back.

    Only in the main thread and only over a Python handler (uvicorn's); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(sig: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)  # not here: a signal handler may interrupt a lock holder
        chained = previous[signal.Signals(sig)]
        if callable(chained):
            chained(sig, frame)

    for sig, old in previous.items():
        if callable(old):
            signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            if callable(old) and signal.getsignal(sig) is handler:
                signal.signal(sig, old)

    return restore


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> FastAPI:
    """A ConvScope app serving the built-in models (unless settings.builtins is false) and those of
    settings.models_file; or `registry`, already loaded (`convscope serve` checks it before starting)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        set_threads(settings.torch_threads)
        try:
            app.state.registry = registry if registry is not None else load_registry(settings)
        except ModelsFileError as exc:
            log.error("%s", exc)  # the sentences first: uvicorn's traceback follows
            raise
        app.state.compute_limiter = limiter = anyio.CapacityLimiter(settings.compute_slots)
        app.state.forward_runs = ForwardRunCache(settings.run_cache_bytes)  # summary forwards' layers, by run id
        catalogue = Catalogue(settings.subsets_dir, settings.fashion_mnist_dir)
        # Training steps wait while requests compute (read from the training thread: a plain int).
        records = RunRecords(open_database(database_url(settings)))  # earlier runs, and their models, are back
        app.state.training = training = RunManager(
            settings, app.state.registry, catalogue, records, requests_busy=lambda: limiter.borrowed_tokens > 0,
            queue=queue_for(settings), train=settings.training_in_server)
        restore_signals = on_exit_signals(training.begin_shutdown)
        try:
            yield
        finally:
            restore_signals()
            training.shutdown()
            records.engine.dispose()

    app = FastAPI(
        title="ConvScope",
        description="Kernels, feature maps and gradients of convolutional networks, as JSON. "
        "Every error is `{\"detail\": \"<a sentence>\"}` with a 4xx status.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_exception_handler(ConvScopeError, convscope_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST", "DELETE"])
    app.mount("/static", StaticFiles(directory=folder("static")), name="static")
    app.include_router(api_router)
    app.include_router(pages.router)
    return app


try:
    app = create_app()
except ValidationError as exc:  # a bad CONVSCOPE_* setting: its sentences, not a traceback through uvicorn
    raise SystemExit(settings_problem(exc)) from None
