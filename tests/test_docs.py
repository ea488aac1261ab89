"""The project's own docs stay true: configuration page, links, quick start, compose shape."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from server.config import Settings, configuration_page
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_configuration_page_is_generated_from_the_settings() -> None:
    page = (DOCS / "configuration.md").read_text()
    assert page == configuration_page(), "docs/configuration.md is stale: run `python -m server.config > docs/configuration.md`"
    documented = re.findall(r"^\| `(CREDENCE_[A-Z_]+)` \|", page, re.M)
    assert sorted(documented) == sorted(f"CREDENCE_{name.upper()}" for name in Settings.model_fields)
    assert "| `CREDENCE_DATABASE_URL` | (empty) |" in page and "PostgreSQL 14 or newer" in page


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _without_code(text: str) -> str:
    """Links inside code are not links (JSON and shell in the docs are full of brackets)."""
    return re.sub(r"`[^`\n]*`", "", _without_code_blocks(text))


def _anchors(text: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    slugs = set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", _without_code_blocks(text), re.M):
        slugs.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return slugs


def _relative_links(page: Path) -> list[str]:
    links = re.findall(r"\]\(([^)\s]+)\)", _without_code(page.read_text()))
    return [link for link in links if not re.match(r"[a-z]+:", link)]


def test_relative_links_in_readme_and_docs_resolve() -> None:
    broken = []
    for page in PAGES:
        for link in _relative_links(page):
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target.read_text()):
                broken.append(f"{page.relative_to(ROOT)}: {link} (no such heading)")
    assert not broken, "\n".join(broken)


def test_source_paths_named_in_the_docs_exist() -> None:
    """A file moved or split leaves its old name in the prose: every `server/...`, `worker/...` path (and
    dotted module) the README, docs/ and bench/README.md name must still exist."""
    missing = []
    for page in [*PAGES, ROOT / "bench" / "README.md"]:
        text = page.read_text()
        for path in set(re.findall(r"\b((?:server|worker)/[\w/]+\.py)\b", text)):
            if not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
        for dotted in set(re.findall(r"\b((?:server|worker)(?:\.[a-z_]+)+)\b", text)):
            parts = dotted.split(".")
            if not any((ROOT / Path(*parts[:n])).with_suffix(".py").exists() or (ROOT / Path(*parts[:n])).is_dir()
                       for n in range(len(parts), 1, -1)):
                missing.append(f"{page.relative_to(ROOT)}: {dotted}")
    assert not missing, "\n".join(sorted(missing))


def test_readme_links_every_docs_page() -> None:
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in _relative_links(ROOT / "README.md")}
    pages = sorted(DOCS.glob("*.md"))
    assert len(pages) >= 18, "the topics of issue 16 each have a page"
    assert [p.name for p in pages if p.resolve() not in linked] == []


def test_readme_is_a_short_entry_point() -> None:
    assert 100 <= len(README.splitlines()) <= 250
    assert "## Configuration" not in README and "CREDENCE_DATA_DIR" not in README, "settings live in docs/configuration.md"
    section = README.split("## What a verdict is", 1)[1].split("\n## ", 1)[0]
    levels = re.findall(r"^\| `([a-z-]+)` \| (\w+)", section, re.M)
    assert levels == [("known-fake", "red"), ("tampered", "orange"), ("ai-declared", "purple"), ("verified", "green"),
                      ("likely-synthetic", "amber"), ("recovered", "teal"), ("signed-untrusted", "blue"),
                      ("no-evidence", "grey"), ("unavailable", "none")]


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
