"""Reads an inference request in any of its forms into one validated request object.

The image may come as a multipart file `image`, as raw image bytes (Content-Type image/*), or in
a JSON body as a data URL (`image`), a sample id (`sample`) or a ready tensor (`tensor`). Options
(`layers`, `encoding`, `dtype`, `summary`, `thumbnail`, `target`, `loss`, `optimizer`, `lr`) may be query
parameters, form fields or JSON keys.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pydantic_core
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from convscope.config import Settings
from convscope.errors import ImageTooLarge, InvalidRequest, UnsupportedMediaType, size_text
from convscope.schemas import ImageSource

Body = TypeVar("Body", bound=ImageSource)
Schema = TypeVar("Schema", bound=BaseModel)
OPTION_KEYS = ("layers", "encoding", "dtype", "summary", "thumbnail", "target", "loss", "optimizer", "lr", "sample")
HOW_TO_SEND = ("Send the image as a multipart file field 'image', as raw image bytes, or as JSON with "
               "'image' (a data URL), 'sample' (a sample id) or 'tensor'.")


@dataclass(frozen=True)
class Parsed(Generic[Body]):
    """The validated request, and the image bytes when they came as a file or a data URL."""

    body: Body
    image: bytes | None


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it grows past `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ImageTooLarge(f"The request is {size_text(int(declared))}; the limit is {size_text(limit)}.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ImageTooLarge(f"The request is over the limit of {size_text(limit)}.")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # lets Starlette's form parser read what we have already consumed
    return body


def describe(error: ValidationError) -> str:
    """One sentence for the first problem pydantic found."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    if first["type"] == "extra_forbidden":
        return f"'{where}' is not a parameter this endpoint knows."
    return f"'{where}': {first['msg']}."


def validate(schema: type[Schema], fields: dict[str, Any]) -> Schema:
    """Validate with pydantic; a failure becomes InvalidRequest (422) with a sentence."""
    try:
        return schema.model_validate(fields)
    except ValidationError as error:
        # The first few problems, without echoing the (possibly huge) input values back.
        errors = json.loads(error.json(include_input=False, include_url=False))[:10]
        raise InvalidRequest(describe(error), errors) from None


def _from_query(request: Request, schema: type[BaseModel]) -> dict[str, Any]:
    """The options in the query string: the common ones, and any other field of the schema but the
    image itself (so that an endpoint with options of its own reads them from the query too)."""
    fields: dict[str, Any] = {}
    for key in dict.fromkeys((*OPTION_KEYS, *schema.model_fields)):
        if key in ("image", "tensor"):
            continue
        if key in request.query_params:
            fields[key] = request.query_params[key]
    return fields


def _split_layers(fields: dict[str, Any]) -> dict[str, Any]:
    """`layers=a,b` in a query or form field means ["a", "b"]."""
    if isinstance(fields.get("layers"), str):
        fields["layers"] = [name for name in fields["layers"].split(",") if name]
    return fields


def data_url_bytes(url: str) -> bytes:
    """The bytes of a data URL (or of bare base64)."""
    if url.startswith("data:") and "," not in url:
        raise InvalidRequest("The image data URL has no data: it should look like data:image/png;base64,...")
    payload = url.split(",", 1)[1] if url.startswith("data:") else url
    if url.startswith("data:") and ";base64" not in url.split(",", 1)[0]:
        raise InvalidRequest("The image data URL must be base64-encoded (data:image/png;base64,...).")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("The image is not valid base64; send a data URL such as data:image/png;base64,...") from None


async def parse(request: Request, schema: type[Body], settings: Settings) -> Parsed[Body]:
    """Read body and query into `schema`; exactly one image source must be given."""
    # base64 adds a third; JSON tensors and form framing a little more.
    raw = await read_capped(request, settings.max_upload_bytes * 4 // 3 + 2**20)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields, image = _from_query(request, schema), None
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=20)
        except HTTPException as error:  # Starlette's 400 for a malformed multipart body
            raise InvalidRequest(f"The multipart body cannot be read: {error.detail}") from None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "image":
                    raise InvalidRequest(f"The file field must be called 'image', not '{key}'.")
                image = await value.read()
            elif key == "tensor":
                fields[key] = _json(value)
            else:
                fields[key] = value
    elif content_type == "application/json":
        body = _json(raw.decode("utf-8", errors="replace"))
        if not isinstance(body, dict):
            raise InvalidRequest("The JSON body must be an object, such as {\"sample\": \"test-00000\"}.")
        fields.update(body)
    elif content_type.startswith("image/"):
        image = raw
    elif raw:
        raise UnsupportedMediaType(f"ConvScope does not read '{content_type or 'untyped'}' bodies. {HOW_TO_SEND}")
    parsed = validate(schema, _split_layers(fields))
    if isinstance(parsed.image, str):
        image = data_url_bytes(parsed.image)
    given = sum(x is not None for x in (image, parsed.sample, parsed.tensor))
    if given == 0:
        raise InvalidRequest(f"There is no image in the request. {HOW_TO_SEND}")
    if given > 1:
        raise InvalidRequest("Send one image source, not several: 'image', 'sample' or 'tensor'.")
    if getattr(parsed, "dtype", None) == "float16" and getattr(parsed, "encoding", None) != "base64":
        raise InvalidRequest("dtype=float16 needs encoding=base64: JSON numbers are not stored as float16.")
    if "thumbnail" in parsed.model_fields_set and not getattr(parsed, "summary", False):
        raise InvalidRequest("thumbnail needs summary=true: without it forward sends every full tensor, no thumbnails.")
    return Parsed(parsed, image)


def _json(text: str) -> Any:
    # pydantic-core's Rust parser reads a tensor's numbers about 8x faster than json.loads, with the
    # same values; on anything it refuses, json.loads decides, so errors (and its leniency) stay the same.
    try:
        return pydantic_core.from_json(text)
    except ValueError:
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequest(f"The body is not valid JSON ({error.msg} at character {error.pos}).") from None
    except RecursionError:
        raise InvalidRequest("The JSON is nested too deeply to read.") from None
