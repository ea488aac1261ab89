"""One configuration object, read from ``CREDENCE_*`` environment variables.

Every setting has a default that runs Credence embedded (SQLite, filesystem broker, no Redis),
so setting ``CREDENCE_DATABASE_URL`` and ``CREDENCE_REDIS_URL`` is all it takes to move to
PostgreSQL + Redis. tests/test_docs.py keeps the README configuration table in step with the fields.
"""
from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PIPELINE_VERSION = "4"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CREDENCE_", extra="ignore")

    data_dir: Path = Field(Path("./data"), description="Where embedded state lives: SQLite file, broker folders, media store.")
    database_url: str = Field("", description="SQLAlchemy URL. Empty: SQLite file in the data dir.")
    redis_url: str = Field("", description="Redis URL for broker, cache, locks and rate limits. Empty: embedded (no Redis).")
    broker_url: str = Field("", description="Celery broker override. Empty: Redis when set, else a filesystem broker in the data dir.")
    media_dir: Path | None = Field(None, description="Content-addressed store of fetched bytes (shared by all workers). Empty: data dir/media.")
    bank_index_dir: Path | None = Field(None, description="Where a host's worker processes keep the bank index: built once per bank generation, then memory-mapped by all of them (one copy per host). Empty: data dir/bank-index.")
    host: str = Field("127.0.0.1", description="Address `credence serve` listens on.")
    port: int = Field(8080, description="Port `credence serve` listens on.")
    allow_anonymous: bool = Field(True, description="Allow checks without an API key (rate limited).")
    rate_limit: str = Field("120/minute", description="Rate limit for anonymous check requests (flask-limiter syntax).")
    cors_origins: str = Field("", description="Extra CORS origins, comma-separated (extension origins are always allowed).")
    max_urls_per_request: int = Field(100, description="Most URLs in one POST /checks.")
    max_wait_s: float = Field(5.0, description="Longest long-poll `wait` a request may ask for.")
    cache_ttl_s: int = Field(86400, description="Lifetime of cached verdicts in Redis.")
    fetch_max_bytes: int = Field(25 * 1024 * 1024, description="Largest image (any non-video body) fetched or uploaded; videos have their own cap.")
    fetch_timeout_s: float = Field(15.0, description="Total time allowed for one fetch, redirects included.")
    fetch_max_redirects: int = Field(5, description="Most redirects followed by the guarded fetcher.")
    fetch_allow_networks: str = Field("", description="CIDRs exempt from the private-address guard (tests only), comma-separated.")
    max_pixels: int = Field(50_000_000, description="Largest image (width x height) decoded; larger is refused as a decompression bomb.")
    stale_check_s: int = Field(120, description="A check unfinished this long is re-enqueued by the sweeper.")
    visibility_timeout_s: int = Field(300, description="Redis broker: an unacknowledged task is redelivered after this long.")
    worker_concurrency: int = Field(2, description="Worker processes started by `credence serve`.")
    worker_metrics_port: int = Field(0, ge=0, le=65535, description=(
        "Port on which `credence worker` serves its Prometheus metrics (0: off). Under `credence serve` the "
        "worker's metrics are part of the API's /metrics instead."))
    instance_name: str = Field("credence", description="This instance's name on the exchange feed (peers see it as the origin of entries).")
    peer_pull_s: int = Field(300, ge=10, description="How often the beat task pulls each peer's feed.")
    pdq_threshold: int = Field(31, ge=0, le=63, description="Largest PDQ Hamming distance (of 256 bits) that counts as a near duplicate.")
    phash_threshold: int = Field(6, ge=0, le=20, description="Largest pHash Hamming distance (of 64 bits) that counts as a near duplicate.")
    trust_anchors_path: str = Field("", description="PEM file of C2PA signer trust anchors. Empty: data dir/trust/C2PA-TRUST-LIST.pem when `credence trust update` has fetched it.")
    trust_tsa_anchors_path: str = Field("", description="PEM file of trusted time-stamp authorities. Empty: data dir/trust/C2PA-TSA-TRUST-LIST.pem when fetched.")
    trust_user_anchors_path: str = Field("", description="PEM file of your own extra anchors (e.g. a newsroom's private CA), added to the lists above.")
    trust_ekus: str = Field(
        "1.3.6.1.5.5.7.3.4,1.3.6.1.5.5.7.3.36,1.3.6.1.4.1.62558.2.1,1.3.6.1.5.5.7.3.8,1.3.6.1.5.5.7.3.9",
        description="Extended key usages (OIDs, comma-separated) a signing certificate may carry: emailProtection, documentSigning, C2PA claim signing, timeStamping, OCSPSigning.")
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
    vpdq_match_share: float = Field(0.7, gt=0, le=1, description="Share of a video's keyframes (both the checked video's and the banked one's) that must match for a near-duplicate video.")
    detect: bool = Field(True, description="Run the synthetic-media detectors on images and video keyframes that provenance and banks left undecided. Off: the verdict says detection did not run.")
    models_dir: Path | None = Field(None, description="Folder of detector checkpoints with their manifest.json (see Detection). Empty: this repository's `models` folder (the trained baseline) when it is there, else no detector.")
    detectors: str = Field("", description="Manifest names of the detectors to run, comma-separated. Empty: every detector in the manifest.")
    detect_device: str = Field("", description="Torch device for the detectors (`cuda`, `cuda:1`, `cpu`). Empty: CUDA when present, else CPU.")
    detect_batch_size: int = Field(16, ge=1, le=256, description="Most images the gpu worker gathers into one detection batch; a gpu-only worker also prefetches this many per process.")
    detect_batch_wait_s: float = Field(0.05, gt=0, le=10, description="Longest wait for a detection batch to fill before it runs anyway.")
    detect_heatmaps: bool = Field(True, description="Store a Grad-CAM heat map (PNG in the media store) for the first whole-image detector with a convolutional layer.")
    secret_key: str = Field("", repr=False, description="Signs the newsroom desk's session cookies. Empty: a random key made once and kept in data dir/desk-secret-key (set it when several API hosts serve the desk).")
    desk_sightings: bool = Field(True, description="Show on the desk's reports and exports where and when this instance saw an image (its URLs, first seen). Off: not shown.")
    desk_secure_cookie: bool = Field(False, description="Send the desk's session cookie over HTTPS only (turn on behind TLS).")

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
        return self.broker_url or self.redis_url or "filesystem://"

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
