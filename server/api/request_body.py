"""Read a request body (a JSON object into its schema, or an uploaded file) with a clear error for every way it can be wrong."""
from __future__ import annotations

from typing import IO, Any, TypeVar

from flask import request
from pydantic import BaseModel

from server import json_edge
from server.errors import ApiError
from server.schemas import parse
from server.checks.uploads import UploadTooLarge, read_upload, upload_limit

Model = TypeVar("Model", bound=BaseModel)


def parse_json(schema: type[Model]) -> Model:
    if not request.is_json:
        raise ApiError(415, "send the body as application/json")
    try:
        payload = json_edge.loads(request.get_data(cache=True))
    except json_edge.UnsafeText as exc:
        raise ApiError(400, str(exc)) from exc
    except ValueError as exc:
        raise ApiError(400, "the body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object")
    return parse(schema, payload)  # the one validation, as the CLI and the desk validate their input


def query_int(name: str, default: int, lo: int, hi: int) -> int:
    """A query parameter that must be an integer in [lo, hi]: a bad one is a 400, never the default in
    disguise, and never a number too large for the database (that was an OverflowError, a 500)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not text.lstrip("-").isdigit() or len(text) > 24:
        raise ApiError(400, f"{name} must be an integer from {lo} to {hi}")
    value = int(text)
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be an integer from {lo} to {hi}")
    return value


def form_float(name: str, default: float, lo: float, hi: float) -> float:
    """A number in a multipart form field, checked like query_int: NaN and infinities are refused."""
    return _number(request.form.get(name), name, default, lo, hi)


def query_float(name: str, default: float, lo: float, hi: float) -> float:
    """A number in the query string, checked like form_float."""
    return _number(request.args.get(name), name, default, lo, hi)


def _number(raw: str | None, name: str, default: float, lo: float, hi: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ApiError(400, f"{name} must be a number from {lo} to {hi}") from exc
    if not lo <= value <= hi:  # also false for NaN
        raise ApiError(400, f"{name} must be a number from {lo} to {hi}")
    return value


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
