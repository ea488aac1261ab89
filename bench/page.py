"""A fresh page's badges: N never-seen ~1 MP photos posted to a real `credence serve` as one batch (issue 17).

Run: .venv/bin/python bench/page.py [--images 50] [--rounds 5] [--detect both|on|off] [--shape embedded|production|both]

Why: the path every new article takes (fetch task, cpu task, gpu task, the broker hops between them) is the
one a reader waits on. Its floor is the CPU work no server can skip, decode + SHA-256 + PDQ x8 + pHash of the
same bytes, measured in the same run with one process per core; the ratio to it is the figure to drive down.
The client posts the page once (with ``wait``) and then long-polls only the pending ids
(``GET /api/v1/checks?ids=...&wait=S``), as the extension does, so each verdict is seen when it exists.

The per-stage profile comes from the verdicts' ``timings`` (each rule's ms) and the progress events the workers
write (server/checks/progress.py, what the desk reads): when each fetch started and ended, when the cpu task
began its plan, when detection was queued, started and ended, and when the verdict was recorded. The gaps
between are broker and queue waits. Each image's figures are per image; stages of different images overlap.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from common import ROOT, percentile, throwaway_postgres

import psutil
import redis
import requests

from server.checks.progress import DONE, END, PLAN, QUEUED, START, ProgressLog
from tests.helpers import MediaServer, free_port
from tests.images import jpeg_bytes, photo, tiles
from worker.stages import hashes
from worker.stages.decode import decode

MAX_PIXELS = 50_000_000
SIZE = (1152, 864)  # 1.0 MP, a news photo's usual size


# ---------------------------------------------------------------------------- the floor, same bytes, same cores

def _decode_only(blob: bytes) -> None:
    decode(blob, MAX_PIXELS)


def _decode_and_hash(blob: bytes) -> None:
    hashlib.sha256(blob).hexdigest()
    hashes.compute_with_orientations(decode(blob, MAX_PIXELS).image)


class Floor:
    """The floor's warm processes, one per core, kept for the whole run so each page round gets a floor round on
    its own bytes just before it: load from elsewhere on a shared machine then moves both alike."""

    def __init__(self, warm: list[bytes]) -> None:
        self.cores = os.cpu_count() or 1
        self.pool = ProcessPoolExecutor(self.cores)
        for step in (_decode_only, _decode_and_hash):
            list(self.pool.map(step, warm[:self.cores * 2]))  # imports and caches, in every process

    def seconds(self, blobs: list[bytes], step: Any) -> float:
        """Wall seconds for ``step`` over every blob."""
        started = time.perf_counter()
        list(self.pool.map(step, blobs, chunksize=max(1, len(blobs) // (self.cores * 4))))
        return time.perf_counter() - started

    def close(self) -> None:
        self.pool.shutdown()


def _fresh(k: int) -> bytes:
    """Photo ``k``: the mosaics repeat after len(tiles()) (136), so each lap is one level brighter: new bytes of the
    same kind and cost. (Until 2026-12-07's sixth session each lap was saved at a lower quality, so with five
    rounds a run's later shapes and rounds got cheaper files: quality 76-80 by the fourth shape.)"""
    lap, k = divmod(k, len(tiles()))
    image = photo(k, SIZE)
    if lap:
        image = image.point(lambda v: min(255, v + lap))
    return jpeg_bytes(image, 90)


# ---------------------------------------------------------------------------- the server

@contextmanager
def serve(data_dir: Path, detect: bool, database_url: str, redis_url: str,
          log_path: Path) -> Iterator[tuple[str, int]]:
    """`credence serve` as a user runs it, its worker included; yields its base URL and pid once the worker is ready."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDENCE_")}
    env.update({"CREDENCE_DATA_DIR": str(data_dir), "CREDENCE_PORT": str(port),
                "CREDENCE_FETCH_ALLOW_NETWORKS": "127.0.0.1/32", "CREDENCE_RATE_LIMIT": "1000000/minute",
                "CREDENCE_DETECT": "true" if detect else "false"})
    if database_url:
        env["CREDENCE_DATABASE_URL"] = database_url
    if redis_url:
        env["CREDENCE_REDIS_URL"] = redis_url
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                text = log_path.read_text(errors="replace")
                if f"listening on {base}" in text and " ready." in text:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"credence serve did not start:\n{text[-3000:]}")
                time.sleep(0.1)
            yield base, proc.pid
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def post_page(base: str, urls: list[str], post_wait_s: float, poll_s: float,
              timeout_s: float) -> tuple[float, dict[str, float], dict[str, dict]]:
    """POST the page, long-poll the pending ids, as the extension does; returns the POST's epoch start, each
    check's seen-at epoch and its result."""
    session = requests.Session()
    t0 = time.time()
    first = session.post(f"{base}/api/v1/checks", json={"urls": urls, "wait": post_wait_s}, timeout=60)
    first.raise_for_status()
    seen: dict[str, float] = {}
    results: dict[str, dict] = {}
    pending: list[str] = []
    for r in first.json()["results"]:
        results[r["check_id"]] = r
        if r["status"] == "done":
            seen[r["check_id"]] = time.time()
        else:
            pending.append(r["check_id"])
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} checks still pending after {timeout_s} s")
        body = session.get(f"{base}/api/v1/checks", params={"ids": ",".join(pending), "wait": poll_s},
                           timeout=poll_s + 30).json()
        now = time.time()
        for r in body["results"]:
            if r["status"] == "done":
                seen[r["check_id"]] = now
                results[r["check_id"]] = r
        pending = [i for i in pending if i not in seen]
    return t0, seen, results


# ---------------------------------------------------------------------------- the profile

def cpu_seconds(serve_pid: int) -> dict[str, float]:
    """Core-seconds used so far: the API process, the worker's main process, its pool, this bench (the media
    server and the client), and the whole machine (/proc/stat), so the rest (databases, broker, others) shows."""
    def used(p: psutil.Process) -> float:
        t = p.cpu_times()
        return t.user + t.system

    api = psutil.Process(serve_pid)
    out = {"API (credence serve)": used(api), "worker main": 0.0, "worker pool": 0.0}
    for child in api.children():
        out["worker main"] += used(child)
        out["worker pool"] += sum(used(c) for c in child.children(recursive=True))
    out["bench (media server, client)"] = used(psutil.Process())
    total = psutil.cpu_times()
    out["machine"] = total.user + total.system + total.nice + getattr(total, "irq", 0) + getattr(total, "softirq", 0)
    return out


def print_cpu(spent: dict[str, float], wall_s: float) -> None:
    """``spent``: core-seconds of a round on average; ``wall_s``: a round's wall time on average."""
    ours = sum(v for k, v in spent.items() if k != "machine")
    cores = os.cpu_count() or 1
    print(f"  core-seconds from the POST to the last verdict seen, a round on average "
          f"({cores} cores x {wall_s:.2f} s = {cores * wall_s:.2f} available):")
    for name, value in spent.items():
        if name != "machine":
            print(f"    {name:34s} {value:6.2f}")
    print(f"    {'everything else on the machine':34s} {max(0.0, spent['machine'] - ours):6.2f}")
    print(f"    {'idle':34s} {max(0.0, cores * wall_s - spent['machine']):6.2f}")


def _at(events: list[dict], stage: str, event: str, last: bool = False) -> float | None:
    hits = [e for e in events if e.get("stage") == stage and e.get("event") == event]
    return (hits[-1] if last else hits[0])["at"] if hits else None


def settled(plog: ProgressLog, results: dict[str, dict], timeout_s: float) -> None:
    """Wait until every content's last progress event is written: a worker records the verdict (which the client
    may already have seen) and then says so in the progress log, so a profile read at once can miss the end."""
    pairs = [("media", sha) for sha in {(r.get("verdict") or {}).get("sha256") for r in results.values()} if sha]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = plog.read_many(pairs)
        if all(any(e.get("stage") == "analysis" and e.get("event") == DONE for e in events[p]) for p in pairs):
            return
        time.sleep(0.1)


def profile(t0: float, seen: dict[str, float], results: dict[str, dict], plog: ProgressLog) -> dict[str, list[float]]:
    """Per image, ms spent in each stage of the served path and in the gaps between them."""
    sha = {cid: (r.get("verdict") or {}).get("sha256") for cid, r in results.items()}
    events = plog.read_many([("check", cid) for cid in results] + [("media", s) for s in sha.values() if s])
    rows: dict[str, list[float]] = {}

    def add(name: str, ms: float | None) -> None:
        if ms is not None:
            rows.setdefault(name, []).append(ms)

    for cid, r in results.items():
        verdict = r.get("verdict") or {}
        check_ev = events.get(("check", cid), [])
        media_ev = events.get(("media", sha[cid]), []) if sha[cid] else []
        f_start, f_end = _at(check_ev, "fetch", START), _at(check_ev, "fetch", END)
        plan = _at(media_ev, "analysis", PLAN, last=True)
        rule_ends = [e["at"] for e in media_ev if e.get("event") == END and e.get("stage") != "detect"]
        cpu_end = max(rule_ends) if rule_ends else None
        d_queued, d_start = _at(media_ev, "detect", QUEUED, last=True), _at(media_ev, "detect", START, last=True)
        d_end, done = _at(media_ev, "detect", END, last=True), _at(media_ev, "analysis", DONE, last=True)

        def gap(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else (b - a) * 1000

        add("POST -> fetch task starts (API, broker, fetch queue)", gap(t0, f_start))
        add("fetch task: fetch", gap(f_start, f_end))
        add("fetch end -> cpu task plan (store, records, broker, cpu queue)", gap(f_end, plan))
        for rule, ms in (verdict.get("timings") or {}).items():
            if rule != "detect":
                add(f"  cpu task rule {rule}", ms)
        add("cpu task: plan -> last rule end", gap(plan, cpu_end))
        add("last rule end -> detect queued (record media, hand-off)", gap(cpu_end, d_queued))
        add("detect queued -> gpu task starts (broker, gpu queue, batching)", gap(d_queued, d_start))
        add("gpu task: detect (batch ms / batch size)", (verdict.get("timings") or {}).get("detect"))
        batch = next((e.get("batch") for e in reversed(media_ev)
                      if e.get("stage") == "detect" and e.get("event") == START), None)
        add("gpu task: batch size (images, not ms)", batch)
        add("gpu task: detect start -> end (wall of its batch)", gap(d_start, d_end))
        add("last step end -> verdict recorded", gap(d_end or cpu_end, done))
        add("verdict recorded -> client sees it (long poll)", gap(done, seen.get(cid)))
        add("POST -> client sees it (total)", gap(t0, seen.get(cid)))
    return rows


def print_profile(rows: dict[str, list[float]]) -> None:
    print(f"    {'stage (per image, ms)':66s} {'mean':>8s} {'p50':>8s} {'max':>8s} {'n':>4s}")
    for name, values in rows.items():
        mean = sum(values) / len(values)
        print(f"    {name:66s} {mean:8.1f} {percentile(values, 50):8.1f} {max(values):8.1f} {len(values):4d}")


# ---------------------------------------------------------------------------- one run

def run_one(shape: str, detect: bool, rounds: list[list[bytes]], warm_blob: bytes, media: MediaServer,
            args: argparse.Namespace, floor: Floor, tag: str) -> None:
    """One shape, ``len(rounds)`` pages of fresh images on one warm server, each right after its floor round."""
    folder = Path(tempfile.mkdtemp(prefix="credence-page-"))
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}" if shape == "production" else ""
    client = redis.Redis.from_url(redis_url) if redis_url else None
    if client is not None:
        client.flushdb()
    database = throwaway_postgres() if shape == "production" else nullcontext("")
    measured: list[dict[str, Any]] = []
    rows: dict[str, list[float]] = {}
    spent: dict[str, float] = {}
    try:
        with database as database_url, serve(folder / "data", detect, database_url, redis_url,
                                             folder / "serve.log") as (base, pid):
            warm = media.add(f"/{tag}/warm.jpg", warm_blob)  # a warm server: first-call imports and models
            post_page(base, [warm], args.post_wait, args.poll, args.timeout)
            plog = ProgressLog(client, None if client is not None else folder / "data" / "progress")
            for k, blobs in enumerate(rounds):
                urls = [media.add(f"/{tag}/{k}/{i}.jpg", blob) for i, blob in enumerate(blobs)]
                floors = {"decode": floor.seconds(blobs, _decode_only), "hash": floor.seconds(blobs, _decode_and_hash)}
                cpu_before = cpu_seconds(pid)
                t0, seen, results = post_page(base, urls, args.post_wait, args.poll, args.timeout)
                cpu_after = cpu_seconds(pid)
                settled(plog, results, args.timeout)
                for name, values in profile(t0, seen, results, plog).items():
                    rows.setdefault(name, []).extend(values)
                recorded = [e["at"] for (scope, _), ev in plog.read_many(
                    [("media", (r.get("verdict") or {}).get("sha256") or "") for r in results.values()]).items()
                    for e in ev if e.get("event") == DONE]
                last = max(seen.values()) - t0
                for name in cpu_after:
                    spent[name] = spent.get(name, 0.0) + cpu_after[name] - cpu_before[name]
                measured.append({"all": last, "recorded": min(recorded) - t0,
                                 "last_recorded": max(recorded) - t0, "floors": floors,
                                 "levels": {(r.get("verdict") or {}).get("level", "?") for r in results.values()}})
        n = len(rounds[0])
        levels = sorted(set().union(*(m["levels"] for m in measured)))
        print(f"\n{shape}, detection {'on' if detect else 'off'}: {n} fresh images, {len(rounds)} rounds "
              f"(new images each), levels {', '.join(levels)}")
        print(f"    {'round':6s} {'first recorded':>15s} {'last recorded':>14s} {'all seen':>9s} {'floor':>7s} "
              f"{'ratio':>6s} {'decode-only':>12s}")
        for r, m in enumerate(measured):
            print(f"    {r + 1:<6d} {m['recorded']:13.2f} s {m['last_recorded']:12.2f} s {m['all']:7.2f} s "
                  f"{m['floors']['hash']:5.2f} s {m['all'] / m['floors']['hash']:5.1f}x {m['floors']['decode']:10.2f} s")
        pages = sorted(m["all"] for m in measured)
        floors_hash = sorted(m["floors"]["hash"] for m in measured)
        ratios = sorted(m["all"] / m["floors"]["hash"] for m in measured)
        mid = len(measured) // 2  # the median round (the upper one of an even count)
        print(f"  all verdicts: median {pages[mid]:.2f} s ({n / pages[mid]:.1f} images/s), best {pages[0]:.2f} s; "
              f"the decode + hash floor (decode + SHA-256 + PDQ x8 + pHash, same bytes, same cores): median "
              f"{floors_hash[mid]:.2f} s, best {floors_hash[0]:.2f} s")
        print(f"  ratio: median {pages[mid] / floors_hash[mid]:.1f}x the median floor, best {pages[0] / floors_hash[0]:.1f}x "
              f"the best; by round {ratios[0]:.1f}x to {ratios[-1]:.1f}x")
        print_cpu({k: v / len(rounds) for k, v in spent.items()}, sum(pages) / len(pages))
        print_profile(rows)
    finally:
        if client is not None:
            client.flushdb()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="pages per shape, each of new images after its floor")
    parser.add_argument("--detect", choices=("both", "on", "off"), default="both")
    parser.add_argument("--shape", choices=("embedded", "production", "both"), default="embedded",
                        help="embedded: SQLite + filesystem broker; production: throwaway PostgreSQL database + Redis")
    parser.add_argument("--redis-db", type=int, default=13, help="flushed before and after (production shape)")
    parser.add_argument("--post-wait", type=float, default=2.0,
                        help="the POST's wait, seconds (the extension's LONG_POLL_S; it holds until all are done)")
    parser.add_argument("--poll", type=float, default=5.0,
                        help="the follow-up GET's wait, s (the extension's FOLLOW_WAIT_S; answers once any is done)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    shapes = ("embedded", "production") if args.shape == "both" else (args.shape,)
    detects = (True, False) if args.detect == "both" else (args.detect == "on",)
    # Distinct photos, new bytes every run (a page the server never saw): each run gets its own set.
    runs = [(shape, detect) for shape in shapes for detect in detects]
    per_run = 1 + args.rounds * args.images  # a warm-up image, then each round's page
    sets = [[_fresh(k + r * per_run) for k in range(per_run)] for r in range(len(runs))]
    assert len({hashlib.sha256(b).digest() for s in sets for b in s}) == sum(map(len, sets)), "photos repeat"
    cores = os.cpu_count()
    kib = sum(map(len, sets[0][1:])) / len(sets[0][1:]) / 1024
    print(f"{args.images} fresh JPEGs {SIZE[0]}x{SIZE[1]} q90 (~{kib:.0f} KiB each), {cores} cores; each page round "
          f"right after its floor round, on the same bytes, {cores} processes")
    media = MediaServer()
    floor = Floor(sets[0][1:])
    try:
        for r, (shape, detect) in enumerate(runs):
            rounds = [sets[r][1 + i * args.images:1 + (i + 1) * args.images] for i in range(args.rounds)]
            run_one(shape, detect, rounds, sets[r][0], media, args, floor, tag=f"r{r}")
    finally:
        floor.close()
        media.close()

if __name__ == "__main__":
    main()
