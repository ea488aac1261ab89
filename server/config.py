"""One configuration object, read from ``CREDENCE_*`` environment variables.

Every setting has a default that runs Credence embedded (SQLite, filesystem broker, no Redis),
so setting ``CREDENCE_DATABASE_URL`` and ``CREDENCE_REDIS_URL`` is all it takes to move to
PostgreSQL + Redis. docs/configuration.md is generated from the fields (``configuration_page``);
tests/test_docs.py keeps it in step.
"""
from __future__ import annotations

import ipaddress
import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PIPELINE_VERSION = "4"
EMBEDDED_BROKER_SCHEME = "credence-filesystem"  # kombu's filesystem transport, made atomic in server/queue.py


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CREDENCE_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Where embedded state lives: SQLite file, broker folders, media store.")
    database_url: str = Field("", description="SQLAlchemy URL. Empty: SQLite file in the data dir. PostgreSQL 14 or newer (searches use its `bit_count`).")
    redis_url: str = Field("", description="Redis URL for broker, cache, locks and rate limits. Empty: embedded (no Redis).")
    broker_url: str = Field("", description="Celery broker override. Empty: Redis when set, else a filesystem broker in the data dir.")
    media_dir: Path | None = Field(None, description="Content-addressed store of fetched bytes (shared by all workers). Empty: data dir/media.")
    bank_index_dir: Path | None = Field(None, description="Where a host's worker processes keep the bank index: built once per bank generation, then memory-mapped by all of them (one copy per host). Empty: data dir/bank-index.")
    host: str = Field("127.0.0.1", description="Address `credence serve` listens on.")
    port: int = Field(8080, description="Port `credence serve` listens on.")
    allow_anonymous: bool = Field(True, description="Allow checks without an API key (rate limited).")
    rate_limit: str = Field("120/minute", description="Rate limit for anonymous check requests (flask-limiter syntax).")
    cors_origins: str = Field("", description="Extra CORS origins, comma-separated (extension origins are always allowed).")
    trusted_proxies: int = Field(0, ge=0, le=5, description="Reverse-proxy hops in front of the API whose X-Forwarded-For / X-Forwarded-Proto are believed (werkzeug ProxyFix); the client address they give keys rate limits, upload quotas and audit. 0: the socket's peer (API exposed directly). 1: behind docker-compose.yml's nginx. Never more than the proxies really there, or clients choose their own address.")
    max_urls_per_request: int = Field(100, description="Most URLs in one POST /checks.")
    max_wait_s: float = Field(5.0, description="Longest long-poll `wait` a request may ask for.")
    max_stream_s: float = Field(25.0, gt=0, le=300, description="Longest a `GET /api/v1/checks/events` stream stays open; then it says which checks are still pending and ends, and the client opens a new one. Each open stream holds one API thread, so keep it short.")
    cache_ttl_s: int = Field(86400, description="Lifetime of cached verdicts in Redis.")
    fetch_max_bytes: int = Field(25 * 1024 * 1024, description="Largest image (any non-video body) fetched or uploaded; videos have their own cap.")
    fetch_timeout_s: float = Field(15.0, description="Total time allowed for one fetch, redirects included.")
    fetch_max_redirects: int = Field(5, description="Most redirects followed by the guarded fetcher.")
    fetch_allow_networks: str = Field("", description="CIDRs exempt from the private-address guard (tests only), comma-separated.")
    max_pixels: int = Field(50_000_000, description="Largest image (width x height) decoded; larger is refused as a decompression bomb.")
    stale_check_s: int = Field(120, ge=1, description="Lease on a pending check: the worker fetching or analysing it renews it every quarter of this, and the sweeper re-enqueues a check only once its lease has run out (a dead worker's check after at most this long).")
    analysis_soft_limit_s: int = Field(60, ge=1, description="Soft time limit of one analysis task: past it the analysis stops and its checks get an `unavailable` verdict saying it took too long.")
    analysis_hard_limit_s: int = Field(90, ge=1, description="Hard time limit of one analysis task: the worker process is killed (native code ignores the soft limit) and its checks get the same `unavailable` verdict.")
    task_soft_limit_s: int = Field(300, ge=1, description="Soft time limit of every other task (fetch, detection, bank hashing, peer pulls).")
    task_hard_limit_s: int = Field(360, ge=1, description="Hard time limit of every other task: past it the worker process running it is killed.")
    max_media_boxes: int = Field(4096, ge=1, description="Most ISO-BMFF boxes (MP4, MOV, HEIF, AVIF; top level and nested) in a file read; more is refused before any parser reads it (c2pa slows super-linearly with boxes).")
    max_jpeg_scans: int = Field(100, ge=1, description="Most scans in a JPEG decoded or read (a progressive JPEG has about ten); more is refused before decoding.")
    max_png_chunks: int = Field(10_000, ge=1, description="Most chunks in a PNG decoded or read (a 25 MB PNG in 8 KiB IDAT chunks has about 3,200); more is refused before decoding.")
    max_png_text_chunks: int = Field(512, ge=0, description="Most text chunks (tEXt, zTXt, iTXt) in a PNG; more is refused before decoding.")
    max_decode_bytes: int = Field(256 * 1024 * 1024, ge=1, description="Most memory one image decode may take, computed from its header before decoding: pixels x channels x bytes per sample, plus the RGB copy the stages work from (256 MiB: an 8-bit RGB image of about 44 megapixels).")
    visibility_timeout_s: int = Field(300, description="Redis broker: an unacknowledged task is redelivered after this long.")
    worker_concurrency: int = Field(2, description="Worker processes started by `credence serve`.")
    worker_metrics_port: int = Field(0, ge=0, le=65535, description=(
        "Port on which `credence worker` serves its Prometheus metrics (0: off). Under `credence serve` the "
        "worker's metrics are part of the API's /metrics instead."))
    instance_name: str = Field("credence", description="This instance's name on the exchange feed (peers see it as the origin of entries).")
    peer_pull_s: int = Field(300, ge=10, description="How often the beat task pulls each peer's feed.")
    share_manifests: bool = Field(False, description="Publish the manifest repository's own records (valid manifests this instance read itself, with their stores) on the exchange feed, and their withdrawal when forgotten (docs/exchange-feed.md). Privacy cost: peers learn which signed media this instance's users met (never who or where). Off: the feed carries banks only.")
    peer_feed_max_age_s: int = Field(900, ge=30, description="A peer's feed page signed longer ago than this (or this far in the future) is refused as stale: a captured page cannot be replayed to freeze a peer.")
    pdq_threshold: int = Field(31, ge=0, le=63, description="Largest PDQ Hamming distance (of 256 bits) that counts as a near duplicate.")
    phash_threshold: int = Field(6, ge=0, le=20, description="Largest pHash Hamming distance (of 64 bits) that counts as a near duplicate.")
    trust_anchors_path: str = Field("", description="PEM file of C2PA signer trust anchors. Empty: data dir/trust/C2PA-TRUST-LIST.pem when `credence trust update` has fetched it.")
    trust_tsa_anchors_path: str = Field("", description="PEM file of trusted time-stamp authorities. Empty: data dir/trust/C2PA-TSA-TRUST-LIST.pem when fetched.")
    trust_user_anchors_path: str = Field("", description="PEM file of your own extra anchors (e.g. a newsroom's private CA), added to the lists above.")
    trust_ekus: str = Field(
        "1.3.6.1.5.5.7.3.4,1.3.6.1.5.5.7.3.36,1.3.6.1.4.1.62558.2.1,1.3.6.1.4.1.311.76.59.1.9,"
        "1.3.6.1.5.5.7.3.8,1.3.6.1.5.5.7.3.9",
        description="Extended key usages (OIDs, comma-separated) a signing certificate may carry. Default: the C2PA "
                    "specification's content-signer EKUs emailProtection 1.3.6.1.5.5.7.3.4 and documentSigning "
                    "1.3.6.1.5.5.7.3.36 (RFC 9336), and the C2PA Certificate Policy's claim signing "
                    "1.3.6.1.4.1.62558.2.1; Microsoft's C2PA "
                    "signing OID 1.3.6.1.4.1.311.76.59.1.9 (Bing Image Creator, Designer), accepted by c2pa-rs's "
                    "own EKU list (sdk/src/crypto/cose/valid_eku_oids.cfg); and timeStamping 1.3.6.1.5.5.7.3.8 and "
                    "OCSPSigning 1.3.6.1.5.5.7.3.9, which c2pa-rs's sample trust configuration (store.cfg) lists "
                    "for time-stamp authorities and OCSP responders and which never let a certificate sign content. "
                    "docs/provenance.md says where each comes from.")
    trust_list_url: str = Field(
        "https://raw.githubusercontent.com/c2pa-org/conformance-public/main/trust-list/C2PA-TRUST-LIST.pem",
        description="Where `credence trust update` downloads the C2PA Trust List.")
    trust_tsa_list_url: str = Field(
        "https://raw.githubusercontent.com/c2pa-org/conformance-public/main/trust-list/C2PA-TSA-TRUST-LIST.pem",
        description="Where `credence trust update` downloads the C2PA TSA Trust List.")
    remote_manifest_fetch: bool = Field(False, description="Fetch remote C2PA manifests a file points to (through the guarded fetcher). Off: reported as not fetched.")
    keep_thumbnails: bool = Field(True, description="Keep C2PA thumbnails (asset and ingredients) in the media store for the report; verdicts hold their sha256 only.")
    watermark_max_pixels: int = Field(4_194_304, ge=0, description="Largest image checked for the Stable Diffusion invisible watermark (cost grows with size); 0 turns the check off.")
    video_max_bytes: int = Field(100 * 1024 * 1024, description="Largest video read whole (fetched or uploaded). Of a longer one only the first 32 MiB and its index are read, by HTTP range requests where needed; the file hashes then cannot match exactly.")
    video_fetch_timeout_s: float = Field(120.0, gt=0, description="The whole fetch's deadline once the first bytes show a video (CREDENCE_FETCH_TIMEOUT_S stays the deadline of everything else, and of a video until its first bytes arrive). At 120 s a 100 MiB video needs about 7 Mbit/s from its origin.")
    video_max_seconds: float = Field(120.0, gt=0, description="Media time read from the start of a video; the rest is not analysed (the evidence says so).")
    video_max_keyframes: int = Field(32, ge=2, le=256, description="Most keyframes kept per video (scene changes plus a uniform sample) for hashing, detection and the filmstrip.")
    video_max_decode_s: float = Field(30.0, gt=0, description="Wall-clock budget for decoding one video's keyframes.")
    video_max_pixels: int = Field(8_294_400, ge=1, description="Largest video frame (width x height) decoded; larger is refused.")
    video_scene_threshold: float = Field(30.0, gt=0, description="Mean grey-level change (0-255, on 32x32 thumbnails) between frames that counts as a scene cut.")
    vpdq_frame_threshold: int = Field(31, ge=0, le=63, description="Largest PDQ distance between two video frames that counts as the same frame.")
    vpdq_match_share: float = Field(0.7, gt=0, le=1, description="Share of a checked video's vPDQ frames (sampled once a second) that must match frames of a banked video for a near-duplicate, as Meta's vPDQ matcher weighs it; an excerpt of a banked clip matches, a long video holding a banked clip among other footage does not.")
    detect: bool = Field(True, description="Run the synthetic-media detectors on images and video keyframes that provenance and banks left undecided (docs/detection.md). Off: the verdict says detection did not run.")
    training_data_dir: Path = Field(Path(__file__).resolve().parents[2] / "shared" / "data" / "synthetic-images", description=(
        "The detectors' training and validation images, read by `credence detectors train/evaluate` and by the tests that need them "
        "(they skip outside CI when it is missing; with `CI=true` they must run). Default: ../shared/data/synthetic-images beside this repository, a workshop shelf "
        "that is not part of the product."))
    models_dir: Path | None = Field(None, description="Folder of detector checkpoints with their manifest.json (docs/detection.md). Empty: this repository's `models` folder (the trained baseline) when it is there, else no detector.")
    detectors: str = Field("", description="Manifest names of the detectors to run, comma-separated. Empty: every detector in the manifest.")
    detect_device: str = Field("", description="Torch device for the detectors (`cuda`, `cuda:1`, `cpu`). Empty: CUDA when present, else CPU.")
    detect_batch_size: int = Field(16, ge=1, le=256, description="Most images the gpu worker gathers into one detection batch; a gpu-only worker also prefetches this many per process.")
    detect_batch_wait_s: float = Field(0.05, gt=0, le=10, description="Longest wait for a detection batch to fill before it runs anyway.")
    detect_heatmaps: bool = Field(True, description="Make a Grad-CAM heat map (PNG in the media store) for the first whole-image detector with a convolutional layer: for an image when a signed-in person opens its report in the desk, for a video's worst keyframe with its verdict. Off: none is made.")
    detect_threads: int = Field(1, ge=0, le=256, description="Torch threads per worker process for the detectors on CPU. 1 suits `credence serve` and any worker with one process per core (more threads per process oversubscribe the cores); a detection-only worker with one process may use its cores. 0: torch's default (one per core).")
    secret_key: str = Field("", repr=False, description="Signs the newsroom desk's session cookies. Empty: a random key made once and kept in data dir/desk-secret-key (set it when several API hosts serve the desk).")
    desk_sightings: bool = Field(True, description="Show on the desk's reports and exports where and when this instance saw an image (its URLs, first seen). Off: not shown.")
    desk_secure_cookie: bool = Field(False, description="Send the desk's session cookie over HTTPS only (turn on behind TLS).")
    upload_quota_anonymous_bytes: int = Field(64 * 1024 * 1024, ge=0, description="Bytes one anonymous client (by address) may upload per quota window; over it uploads get 429. 0: anonymous uploads refused.")
    upload_quota_keyed_bytes: int = Field(4 * 1024 * 1024 * 1024, ge=0, description="Bytes one API key or desk user may upload per quota window; over it uploads get 429.")
    upload_quota_window_s: int = Field(3600, ge=1, description="Length of the rolling window the upload quotas count in (Redis when configured, else this process's memory).")
    repository_retention_days: int = Field(0, ge=0, description="Forget a manifest repository record (docs/repository.md) that no check, import or re-validation has touched for this many days: an hourly beat task, or `credence provenance expire`. Its thumbnail becomes evictable with it. Peers that pulled it keep their copy (no withdrawal is published: expiry says nothing about its credentials). 0: kept until its credentials fail here.")
    media_store_max_bytes: int = Field(50 * 1024 * 1024 * 1024, ge=0, description="Size budget of the media store: the beat task evicts unreferenced bytes, oldest first, when it is exceeded, and /readyz warns from 90%. 0: no budget.")
    media_evict_interval_s: int = Field(300, ge=10, description="How often the beat task measures the media store and evicts over its budget.")
    http_connection_limit: int = Field(1000, ge=10, description="`credence serve`: most open client connections (waitress); more wait in the listen backlog.")
    http_channel_timeout_s: int = Field(15, ge=1, description="`credence serve`: a connection that sends nothing for this long is closed (waitress channel_timeout).")

    @field_validator("models_dir", mode="before")
    @classmethod
    def _empty_models_dir_is_the_default(cls, value: object) -> object:
        """``CREDENCE_MODELS_DIR=`` (empty) means the default folder, as documented, not the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @cached_property
    def resolved_data_dir(self) -> Path:
        path = self.data_dir.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_data_dir / 'credence.db'}"

    @property
    def media_path(self) -> Path:
        path = (self.media_dir or self.resolved_data_dir / "media").expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def bank_index_path(self) -> Path:
        return (self.bank_index_dir or self.resolved_data_dir / "bank-index").expanduser().resolve()

    @property
    def embedded_broker(self) -> bool:
        return not (self.broker_url or self.redis_url)

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url or f"{EMBEDDED_BROKER_SCHEME}://"

    @property
    def allow_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in self.fetch_allow_networks.split(",")
            if part.strip()
        )


def get_settings() -> Settings:
    """Read the environment now; callers keep the object they were given."""
    return Settings()


_REPO = Path(__file__).resolve().parents[1]


def _shown_default(value: object) -> str:
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{os.path.relpath(value, _REPO) if value.is_absolute() else value}`"
    return f"`{value}`"


def configuration_page() -> str:
    """docs/configuration.md, made from the fields' descriptions so the page cannot drift from the code
    (tests/test_docs.py compares them; `python -m server.config > docs/configuration.md` rewrites it)."""
    lines = ["# Configuration", "",
             "Every setting is an environment variable read once into `server.config.Settings`. The defaults run",
             "Credence embedded (SQLite, a filesystem broker, no Redis); setting `CREDENCE_DATABASE_URL` and",
             "`CREDENCE_REDIS_URL` moves it to PostgreSQL and Redis. This page is generated from the code:",
             "`python -m server.config > docs/configuration.md`.", "",
             "| variable | default | what it does |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        words = " ".join((field.description or "").split()).replace("|", "\\|")
        lines.append(f"| `CREDENCE_{name.upper()}` | {_shown_default(field.default)} | {words} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(configuration_page(), end="")
