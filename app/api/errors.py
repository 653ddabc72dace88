"""The error bodies every route may answer with, declared once for OpenAPI."""

from typing import Any

from convscope.schemas import ErrorBody


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, each with the project's error body."""
    meaning = {404: "Unknown model, layer or sample", 413: "Upload or image too large",
               415: "Body in a form ConvScope does not read", 422: "Invalid image or parameter",
               429: "Too busy; retry later"}
    return {status: {"model": ErrorBody, "description": meaning[status]} for status in statuses}
