"""JSON errors for every failure path: clients always get ``{"error": ..., "details": ...}``."""
from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from server.json_edge import UnsafeText


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details

    def problems(self) -> list[str]:
        """What validation details say, as lines a person reads ("label: String should have at most 300
        characters"): the desk's error page and the CLI show no JSON."""
        if not isinstance(self.details, list):
            return []
        return [f"{'.'.join(str(part) for part in d.get('loc', []))}: {d.get('msg')}"
                for d in self.details if isinstance(d, dict) and "msg" in d]


def _body(message: str, details: Any = None) -> dict[str, Any]:
    return {"error": message, "details": details} if details is not None else {"error": message}


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(err["loc"]), "msg": err["msg"]} for err in exc.errors(include_url=False, include_input=False)]


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(_body(exc.message, exc.details)), exc.status

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return jsonify(_body("request body is invalid", validation_details(exc))), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        messages = {413: "request body is too large", 429: "too many requests, slow down"}
        message = messages.get(exc.code or 0, exc.description or exc.name)
        response = jsonify(_body(message))
        limit = getattr(exc, "limit", None)
        if exc.code == 429 and limit is not None:
            response.headers["Retry-After"] = str(limit.limit.get_expiry())
        return response, exc.code

    @app.errorhandler(UnsafeText)
    def _unsafe(exc: UnsafeText):
        return jsonify(_body(str(exc))), 400

    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError):
        return jsonify(_body("the input is nested too deeply")), 400

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        return jsonify(_body("internal error")), 500
