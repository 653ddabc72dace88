"""HTTP routers, one per resource; `api_router` gathers them under /api."""

from fastapi import APIRouter

from convscope.api import attributions, health, inference, layer_types, models, optimizers, runs, training

api_router = APIRouter(prefix="/api")
api_router.include_router(health.router)
api_router.include_router(models.router)
api_router.include_router(inference.router)
api_router.include_router(runs.router)
api_router.include_router(attributions.router)
api_router.include_router(optimizers.router)
api_router.include_router(layer_types.router)
api_router.include_router(training.router)
