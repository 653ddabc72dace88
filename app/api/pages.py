"""The HTML pages: Jinja2 shells that the ES modules under static/js fill in."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from convscope.resources import folder

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=folder("templates"))


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    models = list(request.app.state.registry)
    return templates.TemplateResponse(request, "index.html", {"models": models})


@router.get("/training", response_class=HTMLResponse)
def training(request: Request) -> HTMLResponse:
    """The training lab: a form built from GET /api/training/options, live curves, compared runs."""
    return templates.TemplateResponse(request, "training.html")
