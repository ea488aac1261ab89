"""Read a request body (a JSON object into its schema, or an uploaded file) with a clear error for every way it can be wrong."""
from __future__ import annotations

from typing import IO, Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from server.errors import ApiError, validation_details
from server.uploads import UploadTooLarge, read_upload, upload_limit

Model = TypeVar("Model", bound=BaseModel)


def parse_json(schema: type[Model]) -> Model:
    if not request.is_json:
        raise ApiError(415, "send the body as application/json")
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "the body is not valid JSON")
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return schema.model_validate(payload)
    except ValidationError as exc:
        raise ApiError(400, "request body is invalid", validation_details(exc)) from exc


def allow_upload(settings: Any) -> None:
    """Raise this request's body limit to the largest upload (a video). Only upload views call it, so
    JSON bodies everywhere else keep the app's smaller MAX_CONTENT_LENGTH."""
    request.max_content_length = upload_limit(settings) + 64 * 1024


def read_file(stream: IO[bytes], settings: Any) -> bytes:
    """An uploaded file under the cap its own bytes call for (videos have a larger one), or a 413."""
    try:
        return read_upload(stream, settings)
    except UploadTooLarge as exc:
        raise ApiError(413, str(exc)) from exc
