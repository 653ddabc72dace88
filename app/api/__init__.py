"""HTTP routers, one per resource; `api_router` gathers them under /api."""

from fastapi import APIRouter

from app.api import health, inference, models

api_router = APIRouter(prefix="/api")
api_router.include_router(health.router)
api_router.include_router(models.router)
api_router.include_router(inference.router)
