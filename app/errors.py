"""The project's exceptions; each carries the HTTP status it maps to and a sentence for people."""

from typing import Any


class ConvScopeError(Exception):
    """Base of every error ConvScope reports to a user."""

    status_code = 400

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors  # the raw field errors behind a validation failure, for programs


class InvalidImage(ConvScopeError):
    """The uploaded bytes are not an image we can read (empty, truncated, not an image)."""

    status_code = 422


class ImageTooLarge(ConvScopeError):
    """The upload is bigger than the byte or pixel limit in the settings."""

    status_code = 413


class NotFound(ConvScopeError):
    """A model, layer or sample that does not exist."""

    status_code = 404


class InvalidRequest(ConvScopeError):
    """A request parameter that is well-formed JSON but makes no sense (bad target, NaN, ...)."""

    status_code = 422


class UntraceableModel(ConvScopeError):
    """A model that torch.fx cannot turn into a layer graph."""

    status_code = 422


class UnsupportedMediaType(ConvScopeError):
    """A request body in a form we don't read (neither JSON, multipart nor image bytes)."""

    status_code = 415


class Busy(ConvScopeError):
    """Too much work queued already; the client should retry later."""

    status_code = 429


class ModelsFileError(Exception):
    """A models file (`convscope serve --models-file`) that cannot be served, found at start-up.

    Not an HTTP error: the server does not start. `problems` holds one sentence per mistake, each
    naming its entry and the fix; the message is all of them under one heading."""

    def __init__(self, path: object, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        heading = f"Cannot serve the models in {self.path}:"
        super().__init__("\n".join([heading, *(f"- {p}" for p in problems)]))


def size_text(count: int) -> str:
    """A byte count as people say it: '512 bytes', '12.5 kB', '10.0 MB'."""
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} kB"
    return f"{count / 1024 / 1024:.1f} MB"
