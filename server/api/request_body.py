"""Parse a JSON request body into a schema with clear 400s for every way it can be wrong."""
from __future__ import annotations

from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from server.errors import ApiError, validation_details

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
