"""Cost of the cached path of POST /api/v1/checks, as a ratio to a bare Flask endpoint.

Why: the goal is "a cached batch costs under 2x the bare endpoint". Raw requests/s depend on the
machine; a floor measured in the same run (same WSGI server, same client, same response bytes,
alternating rounds) does not. The real app and the bare app are served from one child process so
the load-generating client threads do not share a GIL with them.

Not a test: it prints figures and asserts nothing about speed. Traffic goes to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from common import percentile

REDIS_URL = "redis://127.0.0.1:6379/14"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL = 2.0


@contextmanager
def storage(db: str, use_redis: bool) -> Iterator[dict[str, str]]:
    """Temporary data dir, database and Redis db; yields the CREDENCE_* environment for the server."""
    import psycopg
    import redis

    with tempfile.TemporaryDirectory(prefix="credence-bench-") as data_dir:
        env = {"CREDENCE_DATA_DIR": data_dir, "CREDENCE_RATE_LIMIT": "1000000/minute",
               "CREDENCE_DATABASE_URL": "", "CREDENCE_REDIS_URL": "", "CREDENCE_BROKER_URL": ""}
        admin, name, client = None, f"credence_bench_{uuid.uuid4().hex[:10]}", None
        if db == "postgres":
            admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
            admin.execute(f'CREATE DATABASE "{name}"')
            env["CREDENCE_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        if use_redis:
            client = redis.Redis.from_url(REDIS_URL)
            client.flushdb()
            env["CREDENCE_REDIS_URL"] = REDIS_URL
        try:
            yield env
        finally:
            if client is not None:
                client.flushdb()
                client.close()
            if admin is not None:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.close()


def populate(services: Any, count: int) -> list[str]:
    """Analyse ``count`` real JPEGs and record them as the fetch worker would; returns their URLs."""
    from server.checks import records
    from server.checks.urls import normalise, url_key
    from tests.helpers import make_jpeg
    from worker.pipeline.runner import analyze

    urls = []
    for seed in range(count):
        data = make_jpeg(seed=seed)
        url = normalise(f"https://images.example.org/news/{seed:03d}.jpg")
        verdict = analyze(data, services.settings).verdict
        sha256 = services.store.put(data)
        with services.db.session() as session:
            records.record_media(session, sha256=sha256, mime="image/jpeg", size=len(data), width=64, height=48)
            records.record_url(session, url=url, url_hash=url_key(url), sha256=sha256, final_url=url, etag=None)
            records.record_verdict(session, verdict)
        services.cache.remember(url_hash=None, body=verdict.model_dump(mode="json"))
        urls.append(url)
    return urls


def serve(env: dict[str, str], count: int, ready: Any) -> None:
    """Child process: migrate, populate, then serve the real app and the bare app with waitress."""
    try:
        os.environ.update(env)
        logging.getLogger("waitress").setLevel(logging.ERROR)
        from flask import Flask, Response
        from waitress import create_server

        from server.app import create_app
        from server.config import get_settings
        from server.migrate import upgrade

        settings = get_settings()
        upgrade(settings.sqlalchemy_url)
        app = create_app(settings)
        urls = populate(app.extensions["credence"], count)
        client = app.test_client()
        for _ in range(2):  # the first lookup fills url:<hash> in Redis, like production's first hit
            captured = client.post("/api/v1/checks", json={"urls": urls})
        assert captured.status_code == 200 and all(r["status"] == "done" for r in captured.json["results"])
        body = captured.get_data()

        bare = Flask("bare")

        @bare.post("/api/v1/checks")
        def checks() -> Response:
            return Response(body, mimetype="application/json")

        real_srv = create_server(app, host="127.0.0.1", port=0, threads=8)
        bare_srv = create_server(bare, host="127.0.0.1", port=0, threads=8)
        threading.Thread(target=bare_srv.run, daemon=True).start()
        ready.put({"real": real_srv.effective_port, "bare": bare_srv.effective_port, "urls": urls,
                   "body": body, "storage": f"{settings.sqlalchemy_url.split('://')[0]} + "
                   + (f"Redis {settings.redis_url}" if settings.redis_url else "no Redis (database only)")})
        real_srv.run()
    except BaseException:  # noqa: BLE001 - report to the parent instead of dying silently
        ready.put({"error": traceback.format_exc()})


def run_round(base: str, payload: bytes, n: int, sessions: list[requests.Session]) -> tuple[list[float], float]:
    """``n`` POSTs shared by one thread per keep-alive session; returns latencies (s) and wall time (s)."""
    latencies: list[float] = []
    left = [n]
    lock = threading.Lock()
    failures: list[str] = []

    def client(session: requests.Session) -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            started = time.perf_counter()
            resp = session.post(base + "/api/v1/checks", data=payload,
                                headers={"Content-Type": "application/json"}, timeout=30)
            _ = resp.content
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if resp.status_code != 200:
                    failures.append(f"HTTP {resp.status_code}: {resp.text[:200]}")

    threads = [threading.Thread(target=client, args=(s,)) for s in sessions]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} failed requests, first: {failures[0]}")
    return latencies, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--no-redis", action="store_true", help="database-only cache (embedded default)")
    parser.add_argument("--urls", type=int, default=50, help="cached URLs per batch request")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per target")
    parser.add_argument("--warmup", type=int, default=30, help="unmeasured requests per target first")
    parser.add_argument("--threads", type=int, default=4, help="client threads (keep-alive sessions)")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds the requests are split into")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    with storage(args.db, not args.no_redis) as env:
        ready = ctx.Queue()
        child = ctx.Process(target=serve, args=(env, args.urls, ready), daemon=True)
        child.start()
        try:
            info = ready.get(timeout=120)
            if "error" in info:
                raise RuntimeError(f"server process failed:\n{info['error']}")
            targets = {"cached": f"http://127.0.0.1:{info['real']}", "bare": f"http://127.0.0.1:{info['bare']}"}
            payload = json.dumps({"urls": info["urls"]}).encode()
            sessions = {name: [requests.Session() for _ in range(args.threads)] for name in targets}
            for name, base in targets.items():
                run_round(base, payload, args.warmup, sessions[name])
            same = all(requests.post(base + "/api/v1/checks", data=payload, timeout=30,
                                     headers={"Content-Type": "application/json"}).content == info["body"]
                       for base in targets.values())

            lat: dict[str, list[float]] = {name: [] for name in targets}
            wall = dict.fromkeys(targets, 0.0)
            per_round = [args.requests // args.rounds + (i < args.requests % args.rounds) for i in range(args.rounds)]
            for i, n in enumerate(per_round):
                for name in (("cached", "bare") if i % 2 == 0 else ("bare", "cached")):  # ABBA order
                    got, took = run_round(targets[name], payload, n, sessions[name])
                    lat[name] += got
                    wall[name] += took
        finally:
            child.terminate()
            child.join(timeout=10)

    stats = {name: (len(lat[name]) / wall[name], percentile(lat[name], 50) * 1000, percentile(lat[name], 99) * 1000)
             for name in targets}
    print(f"storage: {info['storage']} (--db {args.db}{' --no-redis' if args.no_redis else ''})")
    print(f"batch: {args.urls} cached URLs per POST, response {len(info['body']):,} bytes, "
          f"bare body identical to real: {'yes' if same else 'NO'}")
    print(f"load: {args.requests} requests per target after {args.warmup} warmup, {args.threads} keep-alive "
          f"client threads, {args.rounds} alternating rounds, {os.cpu_count()} CPUs")
    print(f"{'target':<8} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for name, (rps, p50, p99) in stats.items():
        print(f"{name:<8} {rps:>9.1f} {p50:>9.2f} {p99:>9.2f}")
    latency_ratio = stats["cached"][1] / stats["bare"][1]
    throughput_ratio = stats["bare"][0] / stats["cached"][0]
    print(f"ratio p50 latency cached/bare: {latency_ratio:.2f}x   throughput bare/cached: {throughput_ratio:.2f}x")
    met = max(latency_ratio, throughput_ratio) < GOAL
    print(f"verdict: goal 'cached batch costs under {GOAL:g}x the bare endpoint' "
          f"{'MET' if met else 'NOT MET'} ({max(latency_ratio, throughput_ratio):.2f}x, worse of the two ratios)")


if __name__ == "__main__":
    main()
