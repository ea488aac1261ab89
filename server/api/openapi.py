"""The OpenAPI 3.1 document, built from the pydantic schemas so it cannot drift from them."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import Blueprint, jsonify
from pydantic.json_schema import models_json_schema

from server import schemas
from server.api.exchange import MAX_CURSOR, PeerCreate, PeerUpdate

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")
REF = "#/components/schemas/{model}"
_MODELS = (schemas.ChecksRequest, schemas.ChecksResponse, schemas.LookupRequest, schemas.LookupResponse,
           schemas.BankCreate, schemas.BankUpdate, schemas.EntrySubmit, schemas.ReviewRequest, schemas.RetractRequest,
           schemas.SearchRequest, schemas.ReportRequest, schemas.CheckResult, schemas.MediaReport,
           schemas.KeyCreateRequest, schemas.KeyInfo, schemas.KeyCreated, schemas.Error, schemas.BankInfo,
           schemas.BankList, schemas.EntryInfo, schemas.EntryPage, schemas.EntryDetail, schemas.EntryDelete,
           schemas.Deleted, PeerCreate, PeerUpdate)
MAX_INT = 2**31 - 1  # query integers above this are a 400 (the database's offset), as are those under the minimum


def _int_query(name: str, minimum: int, maximum: int = MAX_INT, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description,
            "schema": {"type": "integer", "minimum": minimum, "maximum": maximum}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(name: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {400: "Bad request", 401: "API key missing or invalid", 403: "Role too low", 404: "Not found",
             409: "Conflicts with the current state", 413: "Too large", 415: "Not JSON", 429: "Rate limited"}
    return {str(code): _json("Error", words[code]) for code in codes}


def _paths() -> dict[str, Any]:
    key = [{"apiKey": []}, {}]
    check_id = {"name": "check_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/api/v1/checks": {
            "post": {"summary": "Check a batch of media URLs", "security": key,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ChecksRequest")}}},
                     "responses": {"200": _json("ChecksResponse"), **_errors(400, 401, 413, 415, 429)}},
            "get": {"summary": "Status of many checks", "security": key,
                    "parameters": [{"name": "ids", "in": "query", "required": True,
                                    "schema": {"type": "string"}, "description": "Comma-separated check ids (max 100)"},
                                   {"name": "wait", "in": "query", "required": False,
                                    "schema": {"type": "number", "minimum": 0, "maximum": 3600},
                                    "description": "Long poll: seconds to wait (capped by the server) until any of the "
                                                   "checks is done"}],
                    "responses": {"200": _json("ChecksResponse"), **_errors(400, 401)}},
        },
        "/api/v1/lookup": {
            "post": {"summary": "Verdicts by SHA-256 (privacy mode: no URL leaves the browser)", "security": key,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("LookupRequest")}}},
                     "responses": {"200": _json("LookupResponse"), **_errors(400, 401, 413, 415, 429)}},
        },
        "/api/v1/checks/upload": {
            "post": {"summary": "Check an uploaded file", "security": key,
                     "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                         "type": "object", "required": ["file"],
                         "properties": {"file": {"type": "string", "format": "binary"},
                                        "wait": {"type": "number", "minimum": 0, "maximum": 3600}}}}}},
                     "responses": {"200": _json("ChecksResponse"), **_errors(400, 401, 413, 429)}},
        },
        "/api/v1/checks/events": {
            "get": {"summary": "Verdicts pushed as each check is done (server-sent events)", "security": key,
                    "parameters": [{"name": "ids", "in": "query", "required": True,
                                    "schema": {"type": "string", "pattern": "^[0-9A-Za-z_,-]+$"},
                                    "description": "Comma-separated check ids (max 200)"}],
                    "responses": {"200": {"description": (
                        "text/event-stream: an event `result` per check as it is done (data: a CheckResult; an "
                        "unknown id at once, status `unknown`), then `done` when all are, or `timeout` after "
                        "CREDENCE_MAX_STREAM_S with the ids still pending (data: {\"pending\": [...]}); the "
                        "stream then ends. Comment lines are heartbeats."),
                        "content": {"text/event-stream": {"schema": {  # one event (OpenAPI 3.1: schema per event)
                            "type": "object", "required": ["event", "data"],
                            "properties": {"event": {"type": "string", "enum": ["result", "done", "timeout"]},
                                           "data": {"type": "string",
                                                    "description": "JSON: a CheckResult, or {\"pending\": [ids]}"}}}}}},
                        **_errors(400, 401)}},
        },
        "/api/v1/checks/{check_id}": {
            "get": {"summary": "Status of one check", "security": key, "parameters": [check_id],
                    "responses": {"200": _json("CheckResult"), **_errors(401, 404)}},
        },
        "/api/v1/media/{sha256}": {
            "get": {"summary": "Full report for one content", "security": key,
                    "parameters": [{"name": "sha256", "in": "path", "required": True,
                                    "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}}],
                    "responses": {"200": _json("MediaReport"), **_errors(400, 401, 404)}},
        },
        "/api/v1/keys": {
            "post": {"summary": "Create an API key (admin)", "security": [{"apiKey": []}],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("KeyCreateRequest")}}},
                     "responses": {"201": _json("KeyCreated", "Created"), **_errors(400, 401, 403, 415)}},
            "get": {"summary": "List API keys (admin)", "security": [{"apiKey": []}],
                    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"keys": {"type": "array", "items": _ref("KeyInfo")}}}}}},
                        **_errors(401, 403)}},
        },
        "/api/v1/keys/{key_id}": {
            "delete": {"summary": "Revoke an API key (admin)", "security": [{"apiKey": []}],
                       "parameters": [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                       "responses": {"200": _json("KeyInfo"), **_errors(401, 403, 404)}},
        },
        **_bank_paths(),
        **_exchange_paths(),
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}},
        "/readyz": {"get": {"summary": "Readiness: database and broker reachable",
                            "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Metrics"}}}},
    }


def _body(name: str, multipart: bool = False) -> dict[str, Any]:
    content = {"application/json": {"schema": _ref(name)}}
    if multipart:
        content["multipart/form-data"] = {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}}}
    return {"required": True, "content": content}


def _bank_paths() -> dict[str, Any]:
    key = [{"apiKey": []}]
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    entry = {"name": "entry_id", "in": "path", "required": True, "schema": {"type": "string"}}
    status = {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(_STATUSES)}}
    return {
        "/api/v1/banks": {
            "get": {"summary": "List banks (reader)", "security": key,
                    "responses": {"200": _json("BankList"), **_errors(401, 403)}},
            "post": {"summary": "Create a bank (admin)", "security": key, "requestBody": _body("BankCreate"),
                     "responses": {"201": _json("BankInfo", "Created"), **_errors(400, 401, 403, 409, 415)}},
        },
        "/api/v1/banks/{name}": {
            "get": {"summary": "One bank with entry counts (reader)", "security": key, "parameters": [name],
                    "responses": {"200": _json("BankInfo"), **_errors(401, 403, 404)}},
            "patch": {"summary": "Change a bank (admin)", "security": key, "parameters": [name],
                      "requestBody": _body("BankUpdate"),
                      "responses": {"200": _json("BankInfo"), **_errors(400, 401, 403, 404, 415)}},
            "delete": {"summary": "Delete a bank and its entries (admin)", "security": key, "parameters": [name],
                       "responses": {"200": _json("Deleted"), **_errors(401, 403, 404)}},
        },
        "/api/v1/banks/{name}/entries": {
            "get": {"summary": "Entries of a bank, newest first (reader)", "security": key,
                    "parameters": [name, status,
                                   _int_query("limit", 1, description="Page size; above 200 it is capped at 200."),
                                   _int_query("offset", 0)],
                    "responses": {"200": _json("EntryPage"), **_errors(400, 401, 403, 404)}},
            "post": {"summary": "Submit an entry: file, URL or hashes; it stays pending (reporter)", "security": key,
                     "parameters": [name], "requestBody": _body("EntrySubmit", multipart=True),
                     "responses": {"201": _json("EntryInfo", "Created"), **_errors(400, 401, 403, 404, 413, 415)}},
        },
        "/api/v1/entries/{entry_id}": {
            "get": {"summary": "One entry with its audit history (reader)", "security": key, "parameters": [entry],
                    "responses": {"200": _json("EntryDetail"), **_errors(401, 403, 404)}},
            "delete": {"summary": "Delete one entry for good; audited, stored media re-matched (admin)",
                       "security": key, "parameters": [entry],
                       "requestBody": {"required": False, "content": {"application/json": {
                           "schema": _ref("EntryDelete")}}},
                       "responses": {"200": _json("Deleted"), **_errors(400, 401, 403, 404, 415)}},
        },
        "/api/v1/entries/{entry_id}/review": {
            "post": {"summary": "Confirm or reject a pending entry (reviewer)", "security": key, "parameters": [entry],
                     "requestBody": _body("ReviewRequest"),
                     "responses": {"200": _json("EntryInfo"), **_errors(400, 401, 403, 404, 409, 415)}},
        },
        "/api/v1/entries/{entry_id}/retract": {
            "post": {"summary": "Retract a confirmed entry (reviewer)", "security": key, "parameters": [entry],
                     "requestBody": _body("RetractRequest"),
                     "responses": {"200": _json("EntryInfo"), **_errors(400, 401, 403, 404, 409, 415)}},
        },
        "/api/v1/search": {
            "post": {"summary": "What do the banks hold that looks like this? (reader)", "security": key,
                     "requestBody": _body("SearchRequest", multipart=True),
                     "responses": {"200": _OBJ, **_errors(400, 401, 403, 413, 415)}},
        },
        "/api/v1/reports": {
            "post": {"summary": "Report an image URL as fake; pending review (reporter)", "security": key,
                     "requestBody": _body("ReportRequest"),
                     "responses": {"201": _json("EntryInfo", "Created"), **_errors(400, 401, 403, 415)}},
        },
    }


_STATUSES = ("pending", "confirmed", "rejected", "retracted")
_OBJ = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}


def _exchange_paths() -> dict[str, Any]:
    key = [{"apiKey": []}]
    obj = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    text = {"description": "The export", "content": {m: {"schema": {"type": "string"}} for m in
                                                     ("application/x-ndjson", "text/plain", "text/csv")}}
    fmt = {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["jsonl", "te-lines", "te-csv"]}}
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/.well-known/credence-instance": {"get": {"summary": "This instance's name and Ed25519 public key",
                                                   "responses": {"200": obj}}},
        "/api/v1/exchange/identity": {"get": {"summary": "Same as /.well-known/credence-instance",
                                              "responses": {"200": obj}}},
        "/api/v1/exchange/feed": {"get": {
            "summary": "Signed, cursor-paged changes of the shared banks (docs/exchange-feed.md)",
            "parameters": [_int_query("since", 0, MAX_CURSOR, "Cursor: the page's events come after it."),
                           _int_query("limit", 1, description="Events per page; above 500 it is capped at 500."),
                           _int_query("v", 1, description="Page version to serve: 2 (signed head and time), "
                                      "1 when absent; above 2 gives 2."),
                           _int_query("manifests", 0, 1, "1: a v2 page also carries the manifest repository's "
                                      "shared records (manifest, manifest-withdrawal events)."),
                           {"name": "banks", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": obj, **_errors(400)}}},
        "/api/v1/banks/{name}/export": {"get": {"summary": "Export one bank (reader)", "security": key,
                                                "parameters": [name, fmt], "responses": {"200": text, **_errors(400, 401, 404)}}},
        "/api/v1/export": {"get": {"summary": "Export every bank (reader)", "security": key, "parameters": [fmt],
                                   "responses": {"200": text, **_errors(400, 401)}}},
        "/api/v1/banks/{name}/import": {"post": {
            "summary": "Import into a bank; all-or-nothing with per-line errors; idempotent (reporter; admin keeps statuses)",
            "security": key, "parameters": [name, fmt],
            "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}},
                                                          "multipart/form-data": {"schema": {"type": "object"}}}},
            "responses": {"200": obj, **_errors(400, 401, 403, 404, 413, 415)}}},
        "/api/v1/peers": {
            "get": {"summary": "Peers (admin)", "security": key, "responses": {"200": obj, **_errors(401, 403)}},
            "post": {"summary": "Add a peer (admin)", "security": key,
                     "requestBody": _body("PeerCreate"),
                     "responses": {"201": obj, **_errors(400, 401, 403, 409, 415)}},
        },
        "/api/v1/peers/{name}": {
            "delete": {"summary": "Remove a peer (admin)", "security": key, "parameters": [name],
                       "responses": {"200": _json("Deleted"), **_errors(401, 403, 404)}},
            "patch": {"summary": "Change a peer's trust or its manifest switch (admin)", "security": key,
                      "parameters": [name], "requestBody": _body("PeerUpdate"),
                      "responses": {"200": obj, **_errors(400, 401, 403, 404, 415)}}},
        "/api/v1/peers/{name}/pull": {"post": {"summary": "Pull a peer now (admin)", "security": key, "parameters": [name],
                                               "responses": {"202": obj, **_errors(401, 403, 404)}}},
    }


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    _, defs = models_json_schema([(m, "validation") for m in _MODELS], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Credence API", "version": "1",
                 "description": "Is this image trustworthy? Provenance, known fakes and detection, with evidence."},
        "paths": _paths(),
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "Authorization: Bearer cred_..."}},
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(document())
