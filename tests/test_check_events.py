"""GET /api/v1/checks/events: verdicts pushed as a server-sent-events stream (issue 18: fewer requests per page).

Read through real servers, since buffering is what breaks streams: waitress (`credence serve`) and gunicorn
behind deploy/nginx.conf (docker-compose.yml). Checks are completed by the test while the stream is open;
each event must arrive while another check is still pending, so it cannot have been held to the end.
"""
from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.app import create_app
from server.checks import records, service
from server.config import PIPELINE_VERSION
from server.migrate import upgrade
from server.verdicts import Evidence, Level, fuse
from tests.conftest import env_for, settings_from
from tests.helpers import ServedApp
from tests.test_serve_limits import production_shape


def make_app(data_dir: Path, **overrides: str):
    settings = settings_from(env_for(data_dir, rate_limit="1000/minute", **overrides))
    upgrade(settings.sqlalchemy_url)
    return create_app(settings)


def new_checks(client, count: int) -> list[str]:
    urls = [f"http://example.com/events/{n}.jpg" for n in range(count)]
    return [r["check_id"] for r in client.post("/api/v1/checks", json={"urls": urls}).get_json()["results"]]


def finish(app, check_id: str, sha: str, level: Level = Level.SIGNED_UNTRUSTED) -> None:
    """What a worker does when a check's analysis ends: a verdict row, the check done."""
    verdict = fuse([Evidence(stage="t", kind="k", summary="s", supports=level)], sha256=sha,
                   versions={"pipeline": PIPELINE_VERSION})
    with app.extensions["credence"].db.session() as session:
        records.record_media(session, sha256=sha, mime="image/jpeg", size=1)
        records.complete_check(session, check_id, records.record_verdict(session, verdict), sha)


def events_of(lines: Iterator[bytes]) -> Iterator[tuple[str, str]]:
    """(event, data) per server-sent event, ("comment", text) per comment line, as a client parses them."""
    event, data = "message", []
    for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            yield "comment", line[1:].strip()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def open_stream(port: int, ids: list[str]) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # a read past this is a failure, not a wait
    conn.request("GET", "/api/v1/checks/events?ids=" + ",".join(ids))
    return conn, conn.getresponse()


def lines_of(response: http.client.HTTPResponse) -> Iterator[bytes]:
    while line := response.readline():
        yield line


def next_event(events: Iterator[tuple[str, str]]) -> tuple[str, dict]:
    for kind, data in events:
        if kind != "comment":
            return kind, json.loads(data)
    raise AssertionError("the stream ended early")


def assert_pushes_each_verdict_as_it_is_done(app, port: int, *, behind_nginx: bool = False) -> None:
    first, second = new_checks(app.test_client(), 2)
    unknown = "f" * 32
    conn, response = open_stream(port, [first, second, unknown])
    try:
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        # What tells nginx not to buffer this response; nginx takes it off.
        assert response.getheader("X-Accel-Buffering") == (None if behind_nginx else "no")
        events = events_of(lines_of(response))
        assert next(events) == ("comment", "stream open")
        kind, data = next_event(events)  # an id nobody made: at once, while both checks are still pending
        assert (kind, data["check_id"], data["status"], data["verdict"]) == ("result", unknown, "unknown", None)
        finish(app, first, "ab" * 32)
        kind, data = next_event(events)  # pushed while the second is still pending: the stream is not buffered
        assert (kind, data["check_id"], data["status"]) == ("result", first, "done")
        assert data["verdict"]["level"] == "signed-untrusted" and data["url"] == "http://example.com/events/0.jpg"
        finish(app, second, "cd" * 32, Level.NO_EVIDENCE)
        kind, data = next_event(events)
        assert (kind, data["check_id"], data["verdict"]["level"]) == ("result", second, "no-evidence")
        assert next_event(events) == ("done", {"pending": []})
        assert list(events) == [], "the stream ends once every check is done"
    finally:
        conn.close()


def test_waitress_pushes_each_verdict_as_it_is_done_then_ends(data_dir: Path) -> None:
    app = make_app(data_dir)
    server = ServedApp(app)
    try:
        assert_pushes_each_verdict_as_it_is_done(app, server.effective_port)
    finally:
        server.close()


def test_gunicorn_behind_nginx_pushes_each_verdict_as_it_is_done(data_dir: Path, tmp_path: Path) -> None:
    """docker-compose.yml's shape: nginx buffers responses (proxy_buffering on) unless the API says not to."""
    env = env_for(data_dir, trusted_proxies="1", rate_limit="1000/minute")
    with production_shape(env, tmp_path) as (_, port):
        app = create_app(settings_from(env))  # the same database, to make and finish checks as a worker would
        assert_pushes_each_verdict_as_it_is_done(app, port, behind_nginx=True)
        # The most ids a stream takes, at our ids' length, fit the request line nginx and gunicorn accept.
        ids = ",".join(f"{n:032x}" for n in range(200))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", f"/api/v1/checks/events?ids={ids}")
            response = conn.getresponse()
            assert response.status == 200 and response.read().decode().count("event: result") == 200
        finally:
            conn.close()


def test_a_stream_ends_after_the_longest_duration_naming_what_is_still_pending(data_dir: Path) -> None:
    app = make_app(data_dir, max_stream_s="0.5")
    client = app.test_client()
    pending, done = new_checks(client, 2)
    finish(app, done, "ef" * 32)
    body = client.get(f"/api/v1/checks/events?ids={pending},{done},{done}").get_data(as_text=True)
    events = list(events_of(iter(body.encode().splitlines(keepends=True))))
    assert [kind for kind, _ in events] == ["comment", "result", "timeout"], "a repeated id is answered once"
    assert f'"check_id":"{done}"' in events[1][1]
    assert events[2][1] == f'{{"pending": ["{pending}"]}}'


def test_quiet_streams_send_heartbeats_and_the_cap_bounds_what_a_caller_asks(data_dir: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(data_dir, max_stream_s="0.6")
    (pending,) = new_checks(app.test_client(), 1)
    monkeypatch.setattr(service, "HEARTBEAT_S", 0.0)
    got = list(service.events(app.extensions["credence"], [pending], max_s=3600))  # capped at 0.6 s
    assert ("heartbeat", None) in got
    assert got[-1] == ("timeout", [pending])


BAD_QUERIES = ["", "?ids=", "?ids=,,", "?ids=a%20b", "?ids=..%2Fx", "?ids=%00", "?ids=%F0%9F%98%80", "?ids=" + "a" * 65,
               "?ids=" + ",".join(f"c{n}" for n in range(201))]


def test_bad_ids_are_a_clear_400(data_dir: Path) -> None:
    client = make_app(data_dir).test_client()
    for query in BAD_QUERIES:
        response = client.get(f"/api/v1/checks/events{query}")
        assert response.status_code == 400, query
        assert response.get_json()["error"], query


def test_two_hundred_ids_are_allowed(data_dir: Path) -> None:
    ids = [f"{n:032x}" for n in range(200)]
    body = make_app(data_dir).test_client().get("/api/v1/checks/events?ids=" + ",".join(ids)).get_data(as_text=True)
    assert body.count("event: result") == 200 and body.count('"status":"unknown"') == 200
    assert body.rstrip().endswith('data: {"pending": []}')
