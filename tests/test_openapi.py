"""The OpenAPI document is the API's contract: valid OpenAPI, and every response conforms to it.

A property-based tester (schemathesis on hypothesis) generates requests from the document, valid and
invalid, and sends them through the app's WSGI interface to a real migrated database: no response may be
a 500, and every response's status, content type and body must be the ones the document declares.
Bounded: a few examples per operation, no deadline, the whole run well under a minute."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.banks import service as banks
from server.api.openapi import document
from tests.conftest import env_for, settings_from

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SKIP = ("/metrics", "/readyz", "/api/v1/checks/upload", "/api/v1/peers/{name}/pull")  # need workers or a broker


def test_document_is_valid_openapi() -> None:
    doc = document()
    validate(doc)
    check_result = doc["components"]["schemas"]["CheckResult"]["properties"]["status"]
    assert sorted(check_result["enum"]) == ["done", "pending", "unknown"]
    assert doc["components"]["schemas"]["KeyInfo"]["properties"]["created_at"]["format"] == "date-time"
    entries = doc["paths"]["/api/v1/banks/{name}/entries"]["get"]
    limit = [p for p in entries["parameters"] if p["name"] == "limit"][0]
    assert limit["schema"]["type"] == "integer" and limit["schema"]["minimum"] == 1
    assert "409" in doc["paths"]["/api/v1/banks"]["post"]["responses"]
    assert "415" in doc["paths"]["/api/v1/checks"]["post"]["responses"]
    assert "delete" in doc["paths"]["/api/v1/entries/{entry_id}"]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A migrated app with one key per role and a bank with one entry for generated ids to hit or miss."""
    from server.app import create_app
    from server.auth import create_key
    from server.migrate import upgrade

    data_dir = tmp_path_factory.mktemp("openapi") / "data"
    data_dir.mkdir()
    config = settings_from(env_for(data_dir, rate_limit="100000/minute"))
    upgrade(config.sqlalchemy_url)
    app = create_app(config)
    svc = app.extensions["credence"]
    keys = {role: create_key(svc.db, role=role, name=role)[0] for role in ("reader", "admin")}
    with svc.db.session() as session:
        bank = banks.create_bank(session, name="debunked", kind="fake", actor="test")
        banks.submit_entry(session, bank, actor="test", label="seed", sha256="ab" * 32)
    return app, keys


def test_responses_conform_to_the_document(api) -> None:
    """Each operation gets a few generated requests (valid and invalid), each sent anonymously, as a
    reader and as an admin; failures of every operation are collected, then reported together."""
    app, keys = api
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP:
            continue

        @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case) -> None:
            for role in (None, "reader", "admin"):
                headers = {"Authorization": f"Bearer {keys[role]}"} if role else {}
                response = case.call_and_validate(headers=headers, checks=CHECKS)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - every failing operation is reported, not just the first
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
    assert sum(statuses.values()) > 100 and {200, 201, 400, 401, 403, 404} <= set(statuses), statuses
