"""HTTP routers, one per resource; `api_router` gathers them under /api."""

from fastapi import APIRouter

from app.api import health

api_router = APIRouter(prefix="/api")
api_router.include_router(health.router)
