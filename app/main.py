"""The ASGI app: `uvicorn app.main:app`. Loads the models once, maps our errors to HTTP."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from app.api import api_router, pages
from app.config import ROOT, Settings, get_settings
from app.errors import ConvScopeError
from app.registry import Registry, set_threads


async def convscope_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConvScopeError)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A ConvScope app serving every model card in settings.models_dir."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        set_threads(settings.torch_threads)
        app.state.registry = Registry.from_folder(settings.models_dir)
        yield

    app = FastAPI(
        title="ConvScope",
        description="Kernels, feature maps and gradients of convolutional networks, as JSON.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.add_exception_handler(ConvScopeError, convscope_error)
    app.mount("/static", StaticFiles(directory=ROOT / "static"), name="static")
    app.include_router(api_router)
    app.include_router(pages.router)
    return app


app = create_app()
