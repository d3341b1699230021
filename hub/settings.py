"""Settings: the one place that reads the environment.

Every knob is a ``HUB_*`` variable with a safe local default, so ``hub serve`` works on a
fresh clone (SQLite, chdb, a blob folder and a local Elasticsearch-compatible server under
the data dir). Production sets the URLs to real services (see compose/.env.example).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _database_from_url(url: str, data_dir: Path) -> dict:
    """``sqlite:///path`` (default: data dir) or ``postgres://user:pw@host:port/db``."""
    if not url:
        url = f"sqlite:///{data_dir / 'hub.sqlite3'}"
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path) or str(data_dir / "hub.sqlite3")
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # a fresh clone just works
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            # WAL + a busy timeout: the web process and workers write at once. IMMEDIATE
            # transactions take the write lock up front, so a compare-and-swap on a branch
            # head waits instead of failing with "database is locked" on lock upgrade.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # Keep each thread's connection between requests: opening one and running the
            # PRAGMAs above cost more than a typical API request's own queries.
            "CONN_MAX_AGE": 600,
            # A file, not :memory:: tests run real concurrent writers from threads.
            "TEST": {"NAME": str(Path(path).with_name("test-" + Path(path).name))},
        }
    if parsed.scheme in {"postgres", "postgresql"}:
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "hub",
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
            # Persistent connections, checked before reuse (a restarted PostgreSQL or a pooler
            # that dropped the link costs one reconnect, not a 500). Behind pgbouncer in
            # transaction mode set HUB_DATABASE_PGBOUNCER=1: nothing here keeps session state
            # across transactions (the only advisory lock is pg_advisory_xact_lock, no SET), and
            # server-side cursors, which need one, are turned off.
            "CONN_MAX_AGE": _env_int("HUB_DATABASE_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
            "DISABLE_SERVER_SIDE_CURSORS": _env_bool("HUB_DATABASE_PGBOUNCER", False),
        }
    raise ValueError(f"HUB_DATABASE_URL: unsupported scheme {parsed.scheme!r}")


# --- where things live -------------------------------------------------------------------
HUB_DATA_DIR = Path(_env("HUB_DATA_DIR", str(BASE_DIR / ".hub-data"))).resolve()
HUB_BLOB_DIR = Path(_env("HUB_BLOB_DIR", str(HUB_DATA_DIR / "blobs"))).resolve()

# --- core Django ---------------------------------------------------------------------------
DEBUG = _env_bool("HUB_DEBUG", False)


def _secret_key() -> str:
    """HUB_SECRET_KEY, else the data dir's own key (``hub serve`` creates it on the first start,
    mode 0600). Never a fixed key in production: with neither, only HUB_DEBUG=1 runs."""
    from django.core.exceptions import ImproperlyConfigured

    key = _env("HUB_SECRET_KEY").strip()
    path = HUB_DATA_DIR / "secret-key"
    if not key and path.is_file():
        key = path.read_text().strip()
    if key:
        return key
    if DEBUG:
        return "dev-only-insecure-key-change-me"
    raise ImproperlyConfigured(
        f"No secret key: set HUB_SECRET_KEY (compose/.env), or start the hub with `hub serve`, which creates "
        f"one in {path}. (HUB_DEBUG=1 runs with a fixed development key.)"
    )


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [
    h for h in _env("HUB_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [o for o in _env("HUB_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served by the hub: /api/docs with no internet
    "hub.accounts",
    "hub.registry",
    "hub.tracking",
    "hub.jobs",
    "hub.provenance",
    "hub.compat.mlflow",  # the MLflow tracking API (/api/2.0/mlflow/...)
    "hub.inference",
]

MIDDLEWARE = [
    # Outermost: after any response, the body a view did not read is drained, so the client's
    # keep-alive connection stays usable (hub/common/middleware.py says why).
    "hub.common.middleware.DrainUnreadBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "hub.common.errors.JsonErrorMiddleware",
]

ROOT_URLCONF = "hub.urls"
WSGI_APPLICATION = "hub.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {"default": _database_from_url(_env("HUB_DATABASE_URL"), HUB_DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "/static/"
STATIC_ROOT = HUB_DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# The dashboard: `npm run build` in frontend/ writes dist/ (index.html + hashed assets),
# served by WhiteNoise; hub.web serves index.html for every dashboard route.
HUB_FRONTEND_DIST = BASE_DIR / "frontend" / "dist"
STATICFILES_DIRS = [HUB_FRONTEND_DIST] if HUB_FRONTEND_DIST.is_dir() else []
WHITENOISE_ROOT = HUB_FRONTEND_DIST if HUB_FRONTEND_DIST.is_dir() else None
WHITENOISE_USE_FINDERS = True
# Vite names assets by content hash: they can be cached forever.
WHITENOISE_IMMUTABLE_FILE_TEST = r"^.+/assets/.+-[0-9A-Za-z_-]{8,}\.(js|css|woff2?|svg|png)$"
# Sessions live in the database (shared by every web replica), never in a replica's memory or disk.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Uploads stream through our own code: never let Django buffer big bodies into memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

# --- the other stores ----------------------------------------------------------------------
# chdb:///path (in-process, embedded default) or clickhouse://host:port/db (server)
HUB_CLICKHOUSE_URL = _env("HUB_CLICKHOUSE_URL", f"chdb:///{HUB_DATA_DIR / 'chdb'}")
# Empty: `hub serve` starts a local Elasticsearch-compatible server and sets this.
HUB_ELASTICSEARCH_URL = _env("HUB_ELASTICSEARCH_URL", "")
HUB_ELASTICSEARCH_INDEX_PREFIX = _env("HUB_ELASTICSEARCH_INDEX_PREFIX", "hub")
# A cluster: HUB_ELASTICSEARCH_URL may list several nodes, comma-separated (the client spreads
# requests over them and skips a dead one). Shards and replicas of the indices the hub creates
# (one node: 1 and 0; a cluster of N data nodes: replicas >= 1 so a node's loss loses nothing).
HUB_ELASTICSEARCH_SHARDS = _env_int("HUB_ELASTICSEARCH_SHARDS", 1)
HUB_ELASTICSEARCH_REPLICAS = _env_int("HUB_ELASTICSEARCH_REPLICAS", 0)
# A ClickHouse cluster (the name in the servers' remote_servers, with a Keeper or ZooKeeper and
# the {shard} and {replica} macros): tables are created ON CLUSTER as ReplicatedReplacingMergeTree
# with a Distributed table of the same name over them. Empty: the single-node schema.
HUB_CLICKHOUSE_CLUSTER = _env("HUB_CLICKHOUSE_CLUSTER", "")
HUB_REDIS_URL = _env("HUB_REDIS_URL", "redis://127.0.0.1:6379/0")
# Every Redis key of this hub (Celery queues included) starts with this prefix, so several
# hubs can share one Redis without taking each other's tasks. `hub serve` derives one from
# the data dir when it is not set.
HUB_REDIS_PREFIX = _env("HUB_REDIS_PREFIX", "hub:")
# The hub's own Redis calls (worker presence, the search-index queue; not Celery's) give up
# after this long to connect or to answer: a request never hangs on a Redis that is away.
HUB_REDIS_TIMEOUT_MS = _env_int("HUB_REDIS_TIMEOUT_MS", 500)

# --- registry ------------------------------------------------------------------------------
HUB_MAX_CHUNK_BYTES = _env_int("HUB_MAX_CHUNK_BYTES", 64 * 1024 * 1024)
HUB_MAX_SAFETENSORS_HEADER_BYTES = _env_int("HUB_MAX_SAFETENSORS_HEADER_BYTES", 100 * 1024 * 1024)
HUB_GC_GRACE_SECONDS = _env_int("HUB_GC_GRACE_SECONDS", 24 * 3600)
# An ambiguous commit abbreviation is a 400 listing at most this many of the commits it matches.
HUB_AMBIGUOUS_REF_CANDIDATES = _env_int("HUB_AMBIGUOUS_REF_CANDIDATES", 20)
# A repo's size figures (GET /repos/{ns}/{name}/stats) are cached per set of ref heads, so a
# cached value is never stale; this bounds how long one nobody asks for again is kept.
HUB_REPO_STATS_CACHE_SECONDS = _env_int("HUB_REPO_STATS_CACHE_SECONDS", 24 * 3600)
# A merge with several merge bases first merges the bases into a virtual one (recursively, as
# git does); past this many virtual merges it refuses with 409 multiple_merge_bases instead.
HUB_MERGE_MAX_VIRTUAL_MERGES = _env_int("HUB_MERGE_MAX_VIRTUAL_MERGES", 64)
# Model cards (hub/registry/cards.py): a README.md is read and rendered up to this many bytes
# (the rest is cut, with a note), its YAML front matter parsed up to this many.
HUB_MAX_CARD_BYTES = _env_int("HUB_MAX_CARD_BYTES", 512 * 1024)
HUB_MAX_CARD_METADATA_BYTES = _env_int("HUB_MAX_CARD_METADATA_BYTES", 64 * 1024)
# fsync each chunk before it becomes visible (durability over raw speed).
HUB_BLOB_FSYNC = _env_bool("HUB_BLOB_FSYNC", True)
# Where chunks live: empty = the folder HUB_BLOB_DIR; s3://bucket/prefix = an S3-compatible
# object store (web replicas on several hosts share it). The S3 endpoint, credentials and
# region default to the usual AWS_* variables; empty credentials = boto3's own chain.
HUB_BLOB_URL = _env("HUB_BLOB_URL", "")
HUB_S3_ENDPOINT_URL = _env(
    "HUB_S3_ENDPOINT_URL", _env("AWS_ENDPOINT_URL_S3", _env("AWS_ENDPOINT_URL", ""))
)
HUB_S3_ACCESS_KEY_ID = _env("HUB_S3_ACCESS_KEY_ID", _env("AWS_ACCESS_KEY_ID", ""))
HUB_S3_SECRET_ACCESS_KEY = _env("HUB_S3_SECRET_ACCESS_KEY", _env("AWS_SECRET_ACCESS_KEY", ""))
HUB_S3_REGION = _env("HUB_S3_REGION", _env("AWS_REGION", _env("AWS_DEFAULT_REGION", "us-east-1")))
# path (bucket in the URL path: MinIO, SeaweedFS, and AWS) or virtual (bucket as host name).
HUB_S3_ADDRESSING_STYLE = _env("HUB_S3_ADDRESSING_STYLE", "path")
HUB_S3_MAX_CONNECTIONS = _env_int("HUB_S3_MAX_CONNECTIONS", 32)
# Whole-file downloads of files at least this big answer 302 to a presigned URL of the store
# (only a file stored as one chunk has one object to point at); 0 = never (the default).
HUB_S3_PRESIGN_MIN_BYTES = _env_int("HUB_S3_PRESIGN_MIN_BYTES", 0)
HUB_S3_PRESIGN_SECONDS = _env_int("HUB_S3_PRESIGN_SECONDS", 300)
# The endpoint as clients reach it, when it differs from the hub's (HUB_S3_ENDPOINT_URL).
HUB_S3_PRESIGN_ENDPOINT_URL = _env("HUB_S3_PRESIGN_ENDPOINT_URL", "")

# --- tracking limits (documented, with their error codes, in hub/common/limits.py) ---------
HUB_MAX_METRIC_KEYS_PER_RUN = _env_int("HUB_MAX_METRIC_KEYS_PER_RUN", 10_000)
HUB_MAX_PARAMS_PER_RUN = _env_int("HUB_MAX_PARAMS_PER_RUN", 5_000)
HUB_MAX_PARAM_VALUE_CHARS = _env_int("HUB_MAX_PARAM_VALUE_CHARS", 6_000)
HUB_MAX_KEY_CHARS = _env_int("HUB_MAX_KEY_CHARS", 250)
HUB_MAX_TAGS_PER_RUN = _env_int("HUB_MAX_TAGS_PER_RUN", 100)
HUB_MAX_TAG_CHARS = _env_int("HUB_MAX_TAG_CHARS", 100)
HUB_MAX_PARAMS_DEPTH = _env_int("HUB_MAX_PARAMS_DEPTH", 20)
HUB_MAX_METRIC_DIRECTIONS = _env_int("HUB_MAX_METRIC_DIRECTIONS", 200)
HUB_MAX_ALERTS_PER_RUN = _env_int("HUB_MAX_ALERTS_PER_RUN", 1_000)
HUB_PROFILE_MEMORY_MAX_TENSORS = _env_int("HUB_PROFILE_MEMORY_MAX_TENSORS", 300)
HUB_PROFILE_MEMORY_MAX_POINTS = _env_int("HUB_PROFILE_MEMORY_MAX_POINTS", 1500)
HUB_PROFILE_DIFF_MAX_FRAMES = _env_int("HUB_PROFILE_DIFF_MAX_FRAMES", 5000)
HUB_PROFILE_ARTIFACT_MAX_BYTES = _env_int("HUB_PROFILE_ARTIFACT_MAX_BYTES", 64 * 2**20)
HUB_MAX_REQUEST_BYTES = _env_int("HUB_MAX_REQUEST_BYTES", 16 * 1024 * 1024)
# A request body a view left unread is drained up to this size so keep-alive survives it.
HUB_DRAIN_UNREAD_BODY_BYTES = _env_int("HUB_DRAIN_UNREAD_BODY_BYTES", 64 * 1024 * 1024)
HUB_MAX_METRICS_REQUEST_BYTES = _env_int("HUB_MAX_METRICS_REQUEST_BYTES", 64 * 1024 * 1024)
# The MLflow tracking API (hub/compat/mlflow): one artifact file an MLflow client uploads.
HUB_MLFLOW_MAX_ARTIFACT_BYTES = _env_int("HUB_MLFLOW_MAX_ARTIFACT_BYTES", 1024 * 1024 * 1024)
# The Hugging Face upload API (hub/compat/hf): a file sent inline (base64) in a commit, and a
# whole commit body. Bigger files go through `hub push`.
HUB_HF_MAX_INLINE_FILE_BYTES = _env_int("HUB_HF_MAX_INLINE_FILE_BYTES", 64 * 1024 * 1024)
HUB_HF_MAX_COMMIT_BYTES = _env_int("HUB_HF_MAX_COMMIT_BYTES", 1024 * 1024 * 1024)

# --- jobs ----------------------------------------------------------------------------------
# A running job whose worker has not sent a heartbeat for this long is marked lost. Workers
# beat every 2 s; with the reaper's period this marks a dead worker's job lost within 40 s.
HUB_JOB_LOST_AFTER_S = _env_int("HUB_JOB_LOST_AFTER_S", 40)
# How often `manage.py jobs_reaper` (run by `hub serve`) looks for such jobs.
HUB_JOB_REAP_EVERY_S = _env_int("HUB_JOB_REAP_EVERY_S", 10)
# The workers' own settings (HUB_WORKER_API_URL, HUB_WORKER_TOKEN, HUB_WORKER_QUEUES,
# HUB_WORKER_GPUS, HUB_JOBS_DIR, HUB_KEEP_JOB_DIRS, and the task's retry policy:
# HUB_JOB_MAX_INFRA_RETRIES, HUB_JOB_GPU_RETRY_S, HUB_JOB_GPU_MAX_WAIT_S) are read by
# workers/settings.py: the workers' code does not use Django.
# A job's disk quota in MiB when its resources do not say disk_mb, and the most one may ask
# for. The worker enforces it: the job's folder is a filesystem of that size (a loop-mounted
# ext4 image, workers/sandbox/jobfs.py), /tmp and /dev/shm are tmpfs of that size each.
HUB_JOB_DISK_MB = _env_int("HUB_JOB_DISK_MB", 10 * 1024)
HUB_JOB_MAX_DISK_MB = _env_int("HUB_JOB_MAX_DISK_MB", 1024 * 1024)
# A job attempt's credential (handed out by /worker/start, revoked when the attempt ends) also
# expires this long after the job's time limit: time to pull the base, upload and commit.
HUB_JOB_CREDENTIAL_MARGIN_S = _env_int("HUB_JOB_CREDENTIAL_MARGIN_S", 3600)

# --- inference playground (hub/inference; documented in hub/common/limits.py) ----------------
HUB_INFER_MAX_NEW_TOKENS = _env_int("HUB_INFER_MAX_NEW_TOKENS", 512)
HUB_INFER_MAX_PROMPT_BYTES = _env_int("HUB_INFER_MAX_PROMPT_BYTES", 8192)
HUB_INFER_MAX_WALL_S = _env_int("HUB_INFER_MAX_WALL_S", 60)
HUB_INFER_RATE_LIMIT = _env_int("HUB_INFER_RATE_LIMIT", 30)
HUB_INFER_RATE_WINDOW_S = _env_int("HUB_INFER_RATE_WINDOW_S", 60)
HUB_INFER_MAX_STREAMS = _env_int("HUB_INFER_MAX_STREAMS", 4)
HUB_INFER_MAX_PER_USER = _env_int("HUB_INFER_MAX_PER_USER", 2)
HUB_INFER_START_TIMEOUT_S = _env_int("HUB_INFER_START_TIMEOUT_S", 120)
# The Inspector's attention maps (hub/inference/inspect.py): prompt bytes (= tokens) per request.
HUB_INSPECT_MAX_PROMPT_BYTES = _env_int("HUB_INSPECT_MAX_PROMPT_BYTES", 256)
# ... and the attention weights one answer holds (layers × heads × T(T+1)/2; ~4 bytes each).
HUB_INSPECT_MAX_ATTN_CELLS = _env_int("HUB_INSPECT_MAX_ATTN_CELLS", 4_000_000)
# The Inspector's computation graphs (hub/graphs): one graph.json an inspect job stores.
HUB_INSPECT_MAX_GRAPH_BYTES = _env_int("HUB_INSPECT_MAX_GRAPH_BYTES", 32 << 20)

# --- text watermarks (hub/provenance; documented in hub/common/limits.py and the README) ---------
# POST /watermark/verify: text size, keys tested per request, the detection threshold (one-sided
# z; 4.0 is p < 3.2e-5), and per user / client address, this many requests per window.
HUB_WATERMARK_MAX_TEXT_BYTES = _env_int("HUB_WATERMARK_MAX_TEXT_BYTES", 16384)
HUB_WATERMARK_MAX_KEYS = _env_int("HUB_WATERMARK_MAX_KEYS", 100)
HUB_WATERMARK_Z_THRESHOLD = float(_env("HUB_WATERMARK_Z_THRESHOLD", "4.0"))
HUB_WATERMARK_RATE_LIMIT = _env_int("HUB_WATERMARK_RATE_LIMIT", 30)
HUB_WATERMARK_RATE_WINDOW_S = _env_int("HUB_WATERMARK_RATE_WINDOW_S", 60)
# Seals watermark keys at rest (64 hex characters); empty: derived from the secret key.
HUB_WATERMARK_KEK = _env("HUB_WATERMARK_KEK", "")

# --- sign-in -------------------------------------------------------------------------------
# Failed password sign-ins allowed per account and per client address in a window of
# HUB_SIGNIN_WINDOW_S; past that, 429 with Retry-After until the window ends. A successful
# sign-in clears the account's count.
HUB_SIGNIN_MAX_FAILURES_PER_ACCOUNT = _env_int("HUB_SIGNIN_MAX_FAILURES_PER_ACCOUNT", 5)
HUB_SIGNIN_MAX_FAILURES_PER_ADDRESS = _env_int("HUB_SIGNIN_MAX_FAILURES_PER_ADDRESS", 20)
HUB_SIGNIN_WINDOW_S = _env_int("HUB_SIGNIN_WINDOW_S", 15 * 60)
# Behind a reverse proxy, the client address is the last entry of X-Forwarded-For that this
# many proxies appended (0: REMOTE_ADDR, the header is not trusted).
HUB_TRUSTED_PROXIES = _env_int("HUB_TRUSTED_PROXIES", 0)

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = _env("HUB_CELERY_BROKER_URL", HUB_REDIS_URL)
CELERY_RESULT_BACKEND = _env("HUB_CELERY_RESULT_BACKEND", HUB_REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = _env_bool("HUB_CELERY_EAGER", False)
# Publishing must fail fast when Redis is down (callers fall back), not hang the request.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "global_keyprefix": HUB_REDIS_PREFIX,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": HUB_REDIS_PREFIX}

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hub.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    # Every JSON body is bounded (HUB_MAX_REQUEST_BYTES, 413 request_too_large) and a body nested
    # deeper than the parser follows is a 400, not a RecursionError; forms are bounded by Django's
    # DATA_UPLOAD_MAX_MEMORY_SIZE. Views with bigger bodies (chunks, metrics) set their own parser.
    "DEFAULT_PARSER_CLASSES": [
        "hub.common.limits.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "hub.common.openapi.HubAutoSchema",
    "EXCEPTION_HANDLER": "hub.common.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "hub.common.pagination.Pagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MoE Hub API",
    "DESCRIPTION": "Model registry with git-like branches, experiment tracking and MoE jobs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The contract covers /api/v1 only (the MLflow and Hugging Face layers follow their clients'
    # protocols); hub/common/openapi.py holds the shared error component and the Bearer scheme.
    "PREPROCESSING_HOOKS": ["hub.common.openapi.only_api_v1"],
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "hub.tracking.models.Run.Status",
        "JobStatusEnum": "hub.jobs.models.Job.Status",
        "JobKindEnum": "hub.jobs.models.Job.Kind",
        "RefKindEnum": "hub.registry.models.Ref.Kind",
        "TokenScopeEnum": "hub.accounts.models.ApiToken.Scope",
        "RoleEnum": "hub.accounts.models.Role",
        "DiffStatusEnum": ["added", "removed", "changed"],
        "MetricDirectionEnum": ["min", "max", "none"],
        "MoeAlertKindEnum": "hub.shared.moe_health.ALERT_KINDS",
        "MoeAlertActionEnum": "hub.shared.moe_health.ACTIONS",
        "FinishedJobStatusEnum": ["succeeded", "failed", "cancelled", "lost"],
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": _env("HUB_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "elastic_transport": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}
