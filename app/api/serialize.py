"""Fast JSON answers for tensor-heavy bodies (pydantic-core's Rust serializer, no re-validation)."""

from typing import Any

import pydantic_core
from fastapi.responses import Response


def json_response(body: dict[str, Any]) -> Response:
    """`body` as JSON; the route's response_model documents its shape in OpenAPI."""
    return Response(pydantic_core.to_json(body), media_type="application/json")
