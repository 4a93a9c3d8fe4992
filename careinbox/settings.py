"""CareInbox settings: one module, driven by the environment.

Every value comes from an environment variable read through a typed helper that fails loudly
(``ImproperlyConfigured``) on a value it cannot parse, so a typo in production stops the
process at start-up instead of silently falling back to a default.

With nothing set, CareInbox runs on an embedded default (SQLite under ``var/`` and Celery on
kombu's ``filesystem://`` transport) so that ``make run`` works on a machine with no services.
``DATABASE_URL`` and ``REDIS_URL`` switch it to PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str, *, schemes: set[str]) -> str:
    raw = os.environ.get(name, default).strip()
    if not raw:
        return raw
    scheme = urlparse(raw).scheme
    if scheme not in schemes:
        raise ImproperlyConfigured(
            f"{name}={raw!r} has scheme {scheme!r}; expected one of {sorted(schemes)}."
        )
    return raw


# `manage.py sandbox_post` serves nothing and talks only to the local X emulator: it runs in
# development mode unless DEBUG says otherwise, so the README's command works as written in a
# second terminal next to `make run`. Every other process (web, worker, beat, every other
# command) keeps DEBUG off by default, and so still fails without SECRET_KEY.
LOCAL_SANDBOX_TOOL = Path(sys.argv[0]).name == "manage.py" and sys.argv[1:2] == ["sandbox_post"]
DEBUG = env_bool("DEBUG", LOCAL_SANDBOX_TOOL)
# pytest (8.2+) sets PYTEST_VERSION for its run and for the worker subprocesses it starts.
TESTING = env_bool("CAREINBOX_TESTING", "PYTEST_VERSION" in os.environ)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

VAR_DIR = Path(env_str("CAREINBOX_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def dev_secret_key(path: Path) -> str:
    """The development secret kept in ``path``: made once, then the same for every process.

    A key that changed per process or per run would sign every user out at each restart of
    ``make run`` (sessions and CSRF tokens are signed with it). Web, worker and beat may start
    at the same moment, so a new key is written to a private temporary file and linked into
    place: exactly one process creates it and nobody reads it half-written.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.unlink(missing_ok=True)
        with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            temp.unlink()
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < 50:
        raise ImproperlyConfigured(
            f"{path} holds no usable development secret key; delete it to make a new one."
        )
    return key


SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = dev_secret_key(VAR_DIR / "dev-secret-key")
    elif TESTING:
        SECRET_KEY = "test-only-insecure-key-do-not-use-in-production-" + "x" * 20
    else:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "careinbox.accounts",
    "careinbox.notifications",
    "careinbox.api",
    "channels_social",
    "tickets",
    "monitoring",
    "monitoring.webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "careinbox.tenancy.OrganizationMiddleware",
    "careinbox.tenancy.VaryOnHtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "careinbox.urls"
WSGI_APPLICATION = "careinbox.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "careinbox.tenancy.organization_context",
                "careinbox.settings_area.settings_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'careinbox.sqlite3'}",
    schemes={"sqlite", "postgres", "postgresql", "pgsql"},
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: wait for locks instead of failing, take the write
    # lock at BEGIN so two writers never deadlock, and use WAL so readers never block.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so that a Celery worker subprocess sees the test database; one per
    # test run, so that two runs side by side never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-careinbox-{os.getpid()}.sqlite3")}
    # The covering indexes' INCLUDE columns serve PostgreSQL's index-only scans; SQLite builds
    # the same indexes without them, as it should. Its warning (four of them, on every
    # `make run`) asks a new user to act on nothing.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "login"
# Managers land on the dashboard, agents on the inbox (monitoring.views.landing).
LOGIN_REDIRECT_URL = "monitoring:landing"
LOGOUT_REDIRECT_URL = "login"
# Invitation links (Django's token generator) stay valid this long; a re-sent invitation
# replaces the earlier link.
PASSWORD_RESET_TIMEOUT = env_int("INVITATION_LINK_SECONDS", 3 * 24 * 3600, minimum=600)

# Mail (invitations, notifications): printed to the console under DEBUG unless configured.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "CareInbox <careinbox@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security (production) ------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads nothing from it; the token travels in hx-headers
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG and not TESTING:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)  # a working day

# Content-Security-Policy (django-csp): scripts and styles only from our own static files, no
# inline script, no eval (htmx runs with allowEval off; see base.html's htmx-config), no frames.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
# Permissions-Policy (django-permissions-policy): the inbox needs none of these powerful features.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "usb",
    )
}

# Sign-in throttling (django-axes) on every login form (ours and /admin/login/): after
# AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is locked out
# for AXES_COOLOFF_MINUTES, even with the right password. Keyed on the pair, so an attacker cannot
# lock a colleague out from elsewhere.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "careinbox.api.views.locked_out"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# The client address is REMOTE_ADDR; behind N trusted proxies (TRUSTED_PROXY_COUNT) it is read
# from X-Forwarded-For, which a client can't spoof past them. Without proxies the header is ignored.
_PROXIES = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_IPWARE_PROXY_COUNT = _PROXIES or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if _PROXIES else ["REMOTE_ADDR"]
)

# Error reports (the DEBUG page and mailed reports) hide any variable that looks like a secret.
DEFAULT_EXCEPTION_REPORTER_FILTER = "careinbox.errors.SecretsHidingFilter"

# --- Credentials encryption -----------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt (MultiFernet), so keys rotate.
CREDENTIALS_KEYS = env_list("CREDENTIALS_KEYS", [])
if not CREDENTIALS_KEYS:
    if not (DEBUG or TESTING):
        raise ImproperlyConfigured(
            "CREDENTIALS_KEYS must be set when DEBUG is off "
            "(make one: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')."
        )
    CREDENTIALS_KEYS = ["ZGV2LW9ubHktY3JlZGVudGlhbHMta2V5LTMyYnl0ZXM="]

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "", schemes={"redis", "rediss"})
CELERY_TASK_ALWAYS_EAGER = False
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # kombu's Redis transport, save that an acknowledgement sent while the broker connection
    # is being re-established is dropped rather than stopping the worker (careinbox/broker.py).
    CELERY_BROKER_TRANSPORT = "careinbox.broker:RedisTransport"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    # kombu's filesystem layout, one folder for in and out so producer and worker meet, through
    # our transport: kombu's own writes a message file before its body, and a worker that
    # reads it in between dies (kombu issue #1551); see careinbox/broker.py. The URL's scheme
    # is ignored once a transport is named.
    CELERY_BROKER_TRANSPORT = "careinbox.broker:Transport"
    _broker_dir = VAR_DIR / "celery" / "broker"
    _processed_dir = VAR_DIR / "celery" / "processed"
    _control_dir = VAR_DIR / "celery" / "control"
    for _folder in (_broker_dir, _processed_dir, _control_dir):
        _folder.mkdir(parents=True, exist_ok=True)
    # The host part is unused; naming it stops kombu warning that none was given.
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_processed_dir),
        "store_processed": False,
        "control_folder": str(_control_dir),
        # kombu looks at the folder once a second by default: a task would wait up to 1 s.
        "polling_interval": 0.2,
    }
# A test run uses a queue of its own, so runs sharing one Redis never take each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = env_str(
    "CELERY_QUEUE", f"careinbox-test-{os.getpid()}" if TESTING else "careinbox"
)
# Work someone is waiting for (a reply on its way, events reaching their handlers, SLA sweeps,
# the poll dispatcher itself) has a queue of its own, so it never waits behind a backlog of
# polls. Workers consume both (every queue in CELERY_TASK_QUEUES, unless told otherwise).
CELERY_INTERACTIVE_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-interactive"
CELERY_TASK_QUEUES = (Queue(CELERY_TASK_DEFAULT_QUEUE), Queue(CELERY_INTERACTIVE_QUEUE))
CELERY_TASK_ROUTES = {
    name: {"queue": CELERY_INTERACTIVE_QUEUE}
    for name in (
        "tickets.tasks.send_outbox_item",
        "tickets.tasks.dispatch_ticket_events",
        "tickets.tasks.outbox_housekeeping",
        "channels_social.tasks.poll_due_accounts",
        "monitoring.tasks.*",
    )
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# How often beat polls every enabled handle (from the start of one poll to the start of the
# next), and sweeps SLA timers for warnings and breaches (every ticket event also checks its
# own ticket's timers at once). 15 s by default: X's mentions budget is 300 reads per user
# and 450 per app per 15 min (/work/shared/PLATFORMS.md), so 15 s leaves room for 7 handles
# reading on one app token, and for retries; a handle reading with its own user token
# can afford 4 s (225 of its 300, a quarter spare), what ``make run`` uses and what an
# arrival p95 under 5 s needs (docs/benchmarks.md, "Arrival latency").
POLL_INTERVAL_SECONDS = env_int("POLL_INTERVAL_SECONDS", 15, minimum=2)
SLA_SWEEP_INTERVAL_SECONDS = env_int("SLA_SWEEP_INTERVAL_SECONDS", 5, minimum=1)
# Beat queues poll tasks at the workers' pace (channels_social.services.accounts_to_poll: half
# the polls that ended within a task's expiry may wait at once), and never more than this many.
# Over capacity the queue stays short and fresh: nothing expires unrun and each tick picks who
# waited longest. Beat tops up every second (careinbox.celery.DISPATCH_TICK_SECONDS), so 1,000
# serves up to 1,000 polls/s; 10,000 handles every 15 s (~670 polls/s) fit.
POLL_DISPATCH_BACKLOG = env_int("POLL_DISPATCH_BACKLOG", 1000, minimum=1)

# --- Outbound webhooks (monitoring.webhooks) ---------------------------------------------------
# An endpoint on a private, loopback or link-local address would let an admin make the server
# call into its own network (SSRF): refused unless this says otherwise (development, the tests).
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", DEBUG or TESTING)
# Attempts per delivery before it gives up and the endpoint is marked failing; the wait before
# attempt n+1 is random in [0, base * 2**n] seconds (full jitter), at most an hour.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 30, minimum=1)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)

# --- Cache ----------------------------------------------------------------------------------
# Who is on which ticket (presence, with expiry) and each inbox page's live state: shared by
# every web process through Redis when there is one; in-process otherwise (``make run`` without
# Redis serves from one process). A test run keys its own entries.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"careinbox-test-{os.getpid()}" if TESTING else "careinbox",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Channels -------------------------------------------------------------------------------
# The address of the project's X sandbox emulator (``make run`` starts it here).
X_SANDBOX_URL = env_url("X_SANDBOX_URL", "http://127.0.0.1:8765", schemes={"http", "https"})
CHANNEL_HTTP_TIMEOUT_SECONDS = env_int("CHANNEL_HTTP_TIMEOUT_SECONDS", 15, minimum=1)
# Facebook: one Meta app per installation; each page's access token is stored, encrypted, on
# its SocialAccount. An empty app secret means webhooks are refused (403, logged as not set up).
FACEBOOK_APP_ID = env_str("FACEBOOK_APP_ID")
FACEBOOK_APP_SECRET = env_str(
    "FACEBOOK_APP_SECRET", "careinbox-dev-facebook-app-secret" if DEBUG else ""
)
FACEBOOK_VERIFY_TOKEN = env_str(
    "FACEBOOK_VERIFY_TOKEN", "careinbox-dev-verify-token" if DEBUG else ""
)
FACEBOOK_GRAPH_VERSION = env_str("FACEBOOK_GRAPH_VERSION", "v21.0")
if not re.fullmatch(r"v\d+\.\d+", FACEBOOK_GRAPH_VERSION):
    raise ImproperlyConfigured(
        f"FACEBOOK_GRAPH_VERSION={FACEBOOK_GRAPH_VERSION!r} is not a Graph version like v21.0."
    )
FACEBOOK_WEBHOOK_MAX_BYTES = env_int("FACEBOOK_WEBHOOK_MAX_BYTES", 1_000_000, minimum=1024)
# The address of the project's Facebook Graph emulator (``make run`` starts it here).
FACEBOOK_SANDBOX_URL = env_url(
    "FACEBOOK_SANDBOX_URL", "http://127.0.0.1:8766", schemes={"http", "https"}
)

# --- REST API (Django REST framework, drf-spectacular) ---------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "careinbox.api.auth.ApiTokenAuthentication",
        "careinbox.api.auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["careinbox.api.auth.HasRole"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "careinbox.api.common.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_THROTTLE_USER", "100000/hour" if TESTING else "3600/hour"),
        "anon": env_str("API_THROTTLE_ANON", "100000/hour" if TESTING else "120/hour"),
        "token": env_str("API_THROTTLE_TOKEN", "100000/hour" if TESTING else "20/hour"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CareInbox API",
    "DESCRIPTION": (
        "Tickets, messages, care steps, SLA policies and metrics of your organisation. "
        "Authenticate with `Authorization: Bearer <token>` (make a token in the app under "
        "API tokens, or `POST /api/v1/auth/token/`). Another organisation's object is a 404."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "careinbox.api.schema.add_error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
