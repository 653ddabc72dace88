"""Named dependencies, so that a route reads like its signature."""

from typing import Annotated

import anyio
from fastapi import Depends, Request

from convscope.config import Settings
from convscope.engine.cache import ForwardRunCache
from convscope.errors import NotFound
from convscope.registry import LoadedModel, Registry
from convscope.training.export import RUN_MODEL_PREFIX
from convscope.training.runs import RunManager, TrainingRun


# `async def`, though nothing here awaits: FastAPI runs a plain `def` dependency in its thread pool,
# and three thread round trips per request cost more than the lookups themselves.
async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_model(model: str, request: Request, registry: Annotated[Registry, Depends(get_registry)]) -> LoadedModel:
    """The model named in the path; NotFound (404) lists the ones there are. A training run's model
    that another process has just finished is loaded from its record first."""
    try:
        return registry.get(model)
    except NotFound:
        training: RunManager = request.app.state.training
        if not (model.startswith(RUN_MODEL_PREFIX) and await anyio.to_thread.run_sync(training.serve_stored, model)):
            raise
        return registry.get(model)


async def get_forward_runs(request: Request) -> ForwardRunCache:
    runs: ForwardRunCache = request.app.state.forward_runs
    return runs


async def get_training(request: Request) -> RunManager:
    training: RunManager = request.app.state.training
    return training


def get_training_run(run: str, training: Annotated[RunManager, Depends(get_training)]) -> TrainingRun:
    """The training run named in the path; NotFound (404) says where the runs are listed. A plain
    `def`: reading the run's record is a database query, which runs in FastAPI's thread pool."""
    return training.get(run)


RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
ForwardRunCacheDep = Annotated[ForwardRunCache, Depends(get_forward_runs)]
TrainingDep = Annotated[RunManager, Depends(get_training)]
TrainingRunDep = Annotated[TrainingRun, Depends(get_training_run)]
