"""The project's own docs stay true: configuration table, quick start, compose shape."""
from __future__ import annotations

import re

import yaml

from server.config import Settings
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\| `(CREDENCE_[A-Z_]+)` \|", README, re.M))
    assert documented == {f"CREDENCE_{name.upper()}" for name in Settings.model_fields}


def test_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    block = README.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    assert "\nmake test\n" in (ROOT / ".ci" / "run").read_text()


def test_compose_has_the_production_shape() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "nginx", "worker-cpu", "worker-gpu", "flower"} <= set(services)
    env = services["api"]["environment"]
    assert env["CREDENCE_DATABASE_URL"].startswith("postgresql") and env["CREDENCE_REDIS_URL"].startswith("redis")
    assert "gunicorn" in services["api"]["command"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["credence", "db", "upgrade"]
    gpu = services["worker-gpu"]
    assert "gpu" in gpu["command"] and gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    cpu_queues = services["worker-cpu"]["command"][services["worker-cpu"]["command"].index("-Q") + 1]
    assert set(cpu_queues.split(",")) == {"fetch", "cpu"}
    beats = [name for name, svc in services.items() if "--beat" in (svc.get("command") or [])]
    assert beats == ["worker-cpu"], "exactly one sweeper"
    # gunicorn is reached only through nginx, which buffers slow clients (tests/test_serve_limits.py runs the pair)
    assert "ports" not in services["api"] and services["api"]["expose"] == ["8080"]
    assert services["nginx"]["ports"] == ["8080:8080"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
    assert services["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert "server api:8080" in (ROOT / "deploy" / "nginx.conf").read_text()
    assert env["CREDENCE_TRUSTED_PROXIES"] == "1", "the API keys rate limits on nginx's X-Forwarded-For hop"
    # metrics: the API's gunicorn processes are summed (tests/test_gunicorn_metrics.py), each worker serves its own
    assert services["api"]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    for name in ("worker-cpu", "worker-gpu"):
        assert services[name]["environment"]["CREDENCE_WORKER_METRICS_PORT"] == "9101"
        assert services[name]["environment"]["CREDENCE_DATABASE_URL"] == env["CREDENCE_DATABASE_URL"]
