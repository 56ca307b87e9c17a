"""Every setting the product reads from the environment, in one place: name, default, meaning, validation.

Nothing else in ``core/``, ``db/`` or ``dashboard/`` reads ``os.environ``: code that needs a setting
calls :func:`settings` when it needs it (never at import time, so a changed environment, e.g. a test's
``monkeypatch.setenv``, is seen at once).  :data:`VARIABLES` is the one table of the variables (name,
default, meaning and accepted values); the README's configuration table lists exactly these variables
with the same defaults (``tests/test_settings.py`` checks it).

A variable set to an empty (or blank) value counts as unset.  A bad value raises
:class:`core.errors.BadInputError` (reason ``invalid_parameter``) naming the variable; values that may
hold a secret (``DATABASE_URL``, ``NOTIFY_WEBHOOK_URL``) are never quoted in that message.

``TF_CPP_MIN_LOG_LEVEL`` is TensorFlow's variable (TensorFlow reads it too, for its own log level).  The
product reads it only to decide whether :mod:`core.detection.keras_backend` hides the native start-up
notices TensorFlow prints whatever that level says: unset or ``3`` hides them, ``0``-``2`` shows them.

AWS credentials (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ``~/.aws``...) are read by
boto3's own chain, never here: the product never sees, stores or logs them.

This module is light (standard library and :mod:`core.errors` only) and imports nothing from ``db``,
``dashboard`` or Streamlit.
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple, TypeVar

from core.errors import BadInputError, Reason


class Variable(NamedTuple):
    """One environment variable: its name, its default as the README shows it, and what it means."""

    name: str
    default: str
    description: str


VARIABLES: tuple[Variable, ...] = (
    Variable("DATA_DIR", "./data", "where the SQLite database, uploads, the demo plant and models live (a folder)"),
    Variable("DATABASE_URL", "sqlite:///$DATA_DIR/anomaly.db",
             "any SQLAlchemy URL (dialect://...), e.g. postgresql+psycopg://user@host/db"),
    Variable("MAX_CLIP_SECONDS", "600",
             "longer clips are refused (too_long) at ingest, before being read (a positive number of seconds)"),
    Variable("MAX_SAMPLE_RATE", "96000",
             "clips sampled faster are refused (sample_rate_out_of_range) from their header, before decoding; "
             "with MAX_CLIP_SECONDS it bounds the memory one clip can claim (a whole number of Hz)"),
    Variable("DEMO_PLANT", "1", "1 seeds an empty database with the demo plant on first start, 0 leaves it empty "
                                "(also true/false, yes/no, on/off)"),
    Variable("MAX_UPLOAD_MB", "200", "larger uploads are refused, by core.workflows.uploads, which the Data page uses "
                                     "(a positive number of megabytes, e.g. 0.5)"),
    Variable("MAX_DOWNLOAD_MB", "500",
             "the largest export the Supervised training page offers as a zip download (Streamlit holds a download in "
             "memory while it is served); a larger one is named by its path on the server (a positive number of "
             "megabytes)"),
    Variable("INGEST_ROOTS", "$DATA_DIR",
             "the folders the dashboard may ingest from (and below them), separated by the path separator "
             "(: on Linux); each made absolute"),
    Variable("AUTH", "none",
             "how people sign in to the dashboard: none (one local admin; the server listens on loopback only), "
             "local (accounts and passwords in the database: python -m core users add) or oidc (OpenID Connect)"),
    Variable("AUTH_ROLE_CLAIM", "roles",
             "with AUTH=oidc, the ID-token claim that names a user's roles (a string or a list; the highest of "
             "annotator, engineer, manager, admin counts); without it, the role an admin gave the e-mail"),
    Variable("BLIND_REVIEW", "1",
             "1 hides other annotators' verdicts on a clip from an annotator until they give their own, 0 shows them "
             "(also true/false, yes/no, on/off)"),
    Variable("OVERLAP_FRACTION", "0.1",
             "per machine, the share of flagged clips (chosen by a hash of the clip id, the same in every session) "
             "that two different annotators must judge before it leaves the triage queue (a number from 0 to 1)"),
    Variable("TRAIN_FROM_VERDICTS", "trusted",
             "which pilot verdicts make a field clip training data for the unsupervised detectors, or a confirmed "
             "fault for the automatic choice: trusted (two annotators agree, an adjudication, or one verdict by an "
             "engineer or higher) or any (any standing verdict)"),
    Variable("NOTIFY_WEBHOOK_URL", "none", "an http(s) URL that watch POSTs new flags to as JSON (also --webhook); "
                                           "no user name or password in it"),
    Variable("PUBLIC_URL", "none",
             "the dashboard's address as people reach it (an http(s) URL, e.g. https://triage.example.com); "
             "notifications then carry a link to the flagged clip on the Triage page"),
    Variable("NOTIFY_SNS_TOPIC_ARN", "none", "the ARN of an AWS SNS topic watch publishes new flags to "
                                             "(also --sns-topic)"),
    Variable("REKOGNITION_BUCKET", "none",
             "S3 bucket for Rekognition's images, manifests and output; without it cloud training is disabled"),
    Variable("REKOGNITION_PREFIX", "machine-sound", "key prefix in that bucket (outer slashes dropped)"),
    Variable("REKOGNITION_PROJECT", "machine-sound-anomalies", "Custom Labels project (reused when it exists)"),
    Variable("REKOGNITION_REGION", "boto3's", "AWS region of cloud training, e.g. eu-west-1"),
    Variable("REKOGNITION_PROFILE", "boto3's", "named profile in ~/.aws"),
    Variable("REKOGNITION_INFERENCE_UNITS", "1", "inference units an evaluation starts (a positive whole number)"),
    Variable("REKOGNITION_COST_PER_UNIT_HOUR", "4.00",
             "USD per inference-unit hour, shown before an evaluation starts (check your region's price)"),
    Variable("AWS_REGION", "none",
             "AWS region used when REKOGNITION_REGION is unset, as the other AWS SDKs do (botocore reads only "
             "AWS_DEFAULT_REGION and ~/.aws/config)"),
    Variable("AWS_ENDPOINT_URL", "none",
             "an http(s) URL that S3 and SQS calls go to instead of AWS's (a local moto or MinIO server), as the AWS "
             "SDKs do; no user name or password in it"),
    Variable("S3_CACHE_DIR", "$DATA_DIR/s3-cache",
             "where clips stored in S3 (s3:// URIs) are kept once read, so scoring, views and exports do not fetch "
             "them again (a folder, created readable by its owner only)"),
    Variable("S3_CACHE_MB", "1024",
             "the most that folder holds (a positive number of megabytes); the least recently read clips go first"),
    Variable("RAY_ADDRESS", "none",
             "the Ray cluster that --engine ray runs on when --address is not given (e.g. ray://head:10001, or auto "
             "for the cluster `ray start` runs on this machine); none starts a local Ray instance. Ray reads it too"),
    Variable("TF_CPP_MIN_LOG_LEVEL", "3",
             "TensorFlow's own variable (0 to 3); 0, 1 or 2 also shows the native start-up notices of TensorFlow "
             "that are hidden otherwise"),
)  # fmt: skip
NAMES: tuple[str, ...] = tuple(v.name for v in VARIABLES)

DEFAULT_DATA_DIR = "data"
DEFAULT_MAX_CLIP_SECONDS = 600.0
DEFAULT_MAX_SAMPLE_RATE = 96_000
DEFAULT_MAX_UPLOAD_MB = 200.0
DEFAULT_MAX_DOWNLOAD_MB = 500.0
DEFAULT_S3_CACHE_MB = 1024.0
DEFAULT_PREFIX = "machine-sound"
DEFAULT_PROJECT = "machine-sound-anomalies"
DEFAULT_COST_PER_UNIT_HOUR = 4.00  # USD, us-east-1 list price of Custom Labels inference; check your region

SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
_AWS_REGION = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")  # us-east-1, eu-central-2, us-gov-west-1, cn-north-1
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
DEFAULT_ROLE_CLAIM = "roles"


class AuthMode(StrEnum):
    """How people sign in to the dashboard (``AUTH``)."""

    NONE = "none"  # one local user, an admin; the server listens on loopback only
    LOCAL = "local"  # accounts and argon2 password hashes in the database
    OIDC = "oidc"  # OpenID Connect (Streamlit's st.login); roles from a claim or the users table


class TrainFrom(StrEnum):
    """Which pilot verdicts may make a field clip training data (``TRAIN_FROM_VERDICTS``)."""

    TRUSTED = "trusted"  # two annotators agree, an adjudication, or one verdict by an engineer or higher
    ANY = "any"  # any standing verdict of normal (the rule before adjudication existed)


DEFAULT_OVERLAP_FRACTION = 0.1


WEBHOOK_FORM = "must be an http(s) URL with a host, e.g. https://hooks.example.com/..."
WEBHOOK_CREDENTIALS = "must not carry a user name or password"
PUBLIC_FORM = "must be an http(s) URL with a host, e.g. https://triage.example.com"


def webhook_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a webhook URL (to follow the setting's or option's name: "must ..."),
    or ``None`` when it is fine: an http(s) URL with a host (and a numeric port, when one is given),
    without blanks, and without a user name or password (``user:pw@``: credentials belong in no URL
    that is logged, shown or passed around)."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        return WEBHOOK_FORM
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return WEBHOOK_FORM
    if "@" in parts.netloc:
        return WEBHOOK_CREDENTIALS
    return None


# --- parsing one value --------------------------------------------------------------------------------------------


def _bad(message: str) -> BadInputError:
    return BadInputError(Reason.INVALID_PARAMETER, message)


def _raw(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, stripped; ``None`` when unset, empty or blank."""
    value = env.get(name)
    if value is None:
        return None
    return value.strip() or None


def _float(env: Mapping[str, str], name: str) -> tuple[str | None, float]:
    """``(the raw value, as a float)``: ``(None, nan)`` when unset, ``(raw, nan)`` when it is no number."""
    raw = _raw(env, name)
    try:
        return raw, math.nan if raw is None else float(raw)
    except ValueError:
        return raw, math.nan


def _number(env: Mapping[str, str], name: str, default: float, *, unit: str, allow_zero: bool = False) -> float:
    raw, value = _float(env, name)
    if raw is None:
        return default
    if not (math.isfinite(value) and (value >= 0 if allow_zero else value > 0)):
        kind = "a non-negative" if allow_zero else "a positive"
        raise _bad(f"{name} must be {kind} number of {unit}, got {raw!r}")
    return value


def _whole_number(env: Mapping[str, str], name: str, default: int, *, unit: str) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise _bad(f"{name} must be a positive whole number of {unit}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise _bad(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}")


def _region(env: Mapping[str, str], name: str) -> str | None:
    raw = _raw(env, name)
    if raw is not None and not _AWS_REGION.match(raw):
        raise _bad(f"{name} must be an AWS region such as eu-west-1, got {raw!r}")
    return raw


def _database_url(env: Mapping[str, str]) -> str | None:
    raw = _raw(env, "DATABASE_URL")
    if raw is not None and not _URL_SCHEME.match(raw):  # the value may hold a password: never quoted
        raise _bad("DATABASE_URL must be an SQLAlchemy URL such as postgresql+psycopg://user@host/db "
                   "or sqlite:////path/to/anomaly.db (the value is not shown: it may hold a password)")  # fmt: skip
    return raw


def _webhook_url(env: Mapping[str, str]) -> str | None:
    raw = _raw(env, "NOTIFY_WEBHOOK_URL")
    problem = None if raw is None else webhook_url_problem(raw)
    if problem:  # a webhook URL carries its token: never quoted
        raise _bad(f"NOTIFY_WEBHOOK_URL {problem} (the value is not shown: a webhook URL may hold a token)")
    return raw


def _public_url(env: Mapping[str, str]) -> str | None:
    raw = _raw(env, "PUBLIC_URL")
    problem = None if raw is None else webhook_url_problem(raw)
    if problem or (raw and urllib.parse.urlsplit(raw).query):
        if problem == WEBHOOK_CREDENTIALS:  # never quoted: the value holds a password
            raise _bad(f"PUBLIC_URL {problem} (the value is not shown)")
        problem = {None: "must have no query (?...)", WEBHOOK_FORM: PUBLIC_FORM}.get(problem, problem)
        raise _bad(f"PUBLIC_URL {problem}, got {raw!r}")
    return raw.rstrip("/") if raw else None


def _sns_topic_arn(env: Mapping[str, str]) -> str | None:
    raw = _raw(env, "NOTIFY_SNS_TOPIC_ARN")
    if raw is not None and not SNS_TOPIC_ARN.match(raw):
        raise _bad(f"NOTIFY_SNS_TOPIC_ARN must be an SNS topic ARN such as "
                   f"arn:aws:sns:eu-west-1:123456789012:machine-flags, got {raw!r}")  # fmt: skip
    return raw


def _endpoint_url(env: Mapping[str, str]) -> str | None:
    raw = _raw(env, "AWS_ENDPOINT_URL")
    problem = None if raw is None else webhook_url_problem(raw)
    if problem:  # a URL with credentials in it is never quoted
        form = "must be an http(s) URL with a host, e.g. http://127.0.0.1:5000"
        raise _bad(f"AWS_ENDPOINT_URL {form if problem == WEBHOOK_FORM else problem} (the value is not shown)")
    return raw


def _tensorflow_notices(env: Mapping[str, str]) -> bool:
    raw = _raw(env, "TF_CPP_MIN_LOG_LEVEL")
    if raw is None:
        return False
    if raw not in ("0", "1", "2", "3"):
        raise _bad(f"TF_CPP_MIN_LOG_LEVEL (TensorFlow's log level) must be 0, 1, 2 or 3, got {raw!r}")
    return raw != "3"


def _ray_address(env: Mapping[str, str]) -> str | None:
    raw = _raw(env, "RAY_ADDRESS")
    if raw is not None and any(c.isspace() for c in raw):
        raise _bad(f"RAY_ADDRESS must be a Ray address such as ray://head:10001, head:6379 or auto, got {raw!r}")
    return raw


E = TypeVar("E", bound=StrEnum)


def _choice(env: Mapping[str, str], name: str, choices: type[E], default: E) -> E:
    """One of a ``StrEnum``'s values, case-insensitive; ``default`` when unset."""
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() not in tuple(choices):
        raise _bad(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return choices(raw.lower())


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    raw, value = _float(env, name)
    if raw is None:
        return default
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise _bad(f"{name} must be a number from 0 to 1, got {raw!r}")
    return value


def _folder(env: Mapping[str, str], name: str) -> Path | None:
    raw = _raw(env, name)
    return None if raw is None else Path(raw).resolve()


def _folders(env: Mapping[str, str], name: str) -> tuple[Path, ...]:
    """The folders ``name`` lists (separated by ``os.pathsep``), each resolved; empty entries skipped."""
    raw = _raw(env, name)
    if raw is None:
        return ()
    return tuple(Path(part.strip()).resolve() for part in raw.split(os.pathsep) if part.strip())


# --- the settings -------------------------------------------------------------------------------------------------


TRAINING_COST_PER_HOUR = 1.00  # USD, us-east-1 list price of Custom Labels training; shown before it starts


@dataclass(frozen=True)
class CloudConfig:
    """Where supervised training runs in AWS: bucket, prefix, project, region, profile, cost (``REKOGNITION_*``)."""

    bucket: str | None = None
    prefix: str = DEFAULT_PREFIX
    project: str = DEFAULT_PROJECT
    region: str | None = None
    profile: str | None = None
    inference_units: int = 1
    cost_per_unit_hour: float = DEFAULT_COST_PER_UNIT_HOUR

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CloudConfig:
        """The ``REKOGNITION_*`` variables of ``env``; a bad value raises BadInputError naming it."""
        cost_unit = "US dollars per inference-unit hour"
        return cls(
            bucket=_raw(env, "REKOGNITION_BUCKET"),
            prefix=(_raw(env, "REKOGNITION_PREFIX") or DEFAULT_PREFIX).strip("/"),
            project=_raw(env, "REKOGNITION_PROJECT") or DEFAULT_PROJECT,
            region=_region(env, "REKOGNITION_REGION"),
            profile=_raw(env, "REKOGNITION_PROFILE"),
            inference_units=_whole_number(env, "REKOGNITION_INFERENCE_UNITS", 1, unit="inference units"),
            cost_per_unit_hour=_number(
                env, "REKOGNITION_COST_PER_UNIT_HOUR", DEFAULT_COST_PER_UNIT_HOUR, unit=cost_unit, allow_zero=True
            ),
        )

    def with_overrides(self, **values) -> CloudConfig:
        """This configuration with the given fields replaced (``None`` values keep the current one)."""
        changes = {k: v for k, v in values.items() if v is not None}
        if "prefix" in changes:
            changes["prefix"] = changes["prefix"].strip("/")
        return replace(self, **changes)

    @property
    def hourly_cost(self) -> float:
        """USD per hour while the model runs: units x price per unit hour."""
        return self.inference_units * self.cost_per_unit_hour

    def training_cost_notice(self) -> str:
        return (
            f"Training with Rekognition Custom Labels is billed per hour of training (about "
            f"${TRAINING_COST_PER_HOUR:.2f}/h in us-east-1; check your region), usually a few hours, and a "
            "started training run cannot be stopped."
        )

    def cost_notice(self) -> str:
        return (
            f"Evaluating starts the model on {self.inference_units} inference unit(s) at about "
            f"${self.cost_per_unit_hour:.2f} per inference-unit hour (${self.hourly_cost:.2f}/h, billed while it runs, "
            "including start-up); it is stopped as soon as the test images are scored, also on error."
        )


@dataclass(frozen=True)
class Settings:
    """Every setting of the product, parsed and validated (see the module's table)."""

    data_dir: Path  # DATA_DIR, resolved to an absolute path
    database_url: str | None = field(default=None, repr=False)  # DATABASE_URL; None: SQLite under data_dir
    demo_plant: bool = True  # DEMO_PLANT
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB  # MAX_UPLOAD_MB
    max_download_mb: float = DEFAULT_MAX_DOWNLOAD_MB  # MAX_DOWNLOAD_MB
    max_clip_seconds: float = DEFAULT_MAX_CLIP_SECONDS  # MAX_CLIP_SECONDS
    max_sample_rate: int = DEFAULT_MAX_SAMPLE_RATE  # MAX_SAMPLE_RATE
    notify_webhook_url: str | None = field(default=None, repr=False)  # NOTIFY_WEBHOOK_URL (a secret)
    notify_sns_topic_arn: str | None = None  # NOTIFY_SNS_TOPIC_ARN
    public_url: str | None = None  # PUBLIC_URL, without a trailing slash
    cloud: CloudConfig = CloudConfig()  # REKOGNITION_*
    aws_region: str | None = None  # AWS_REGION
    aws_endpoint_url: str | None = None  # AWS_ENDPOINT_URL
    s3_cache_dir: Path | None = None  # S3_CACHE_DIR, resolved; None (unset) means data_dir / "s3-cache"
    s3_cache_mb: float = DEFAULT_S3_CACHE_MB  # S3_CACHE_MB
    tensorflow_notices: bool = False  # TF_CPP_MIN_LOG_LEVEL set to 0, 1 or 2
    ray_address: str | None = None  # RAY_ADDRESS; None: --engine ray starts a local instance
    auth: AuthMode = AuthMode.NONE  # AUTH
    auth_role_claim: str = DEFAULT_ROLE_CLAIM  # AUTH_ROLE_CLAIM
    blind_review: bool = True  # BLIND_REVIEW
    overlap_fraction: float = DEFAULT_OVERLAP_FRACTION  # OVERLAP_FRACTION
    train_from_verdicts: TrainFrom = TrainFrom.TRUSTED  # TRAIN_FROM_VERDICTS
    ingest_roots: tuple[Path, ...] = ()  # INGEST_ROOTS, resolved; empty (unset) means (data_dir,)

    def __post_init__(self) -> None:
        if not self.ingest_roots:  # the default follows DATA_DIR
            object.__setattr__(self, "ingest_roots", (self.data_dir,))
        if self.s3_cache_dir is None:
            object.__setattr__(self, "s3_cache_dir", self.data_dir / "s3-cache")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """The settings ``env`` describes; a bad value raises BadInputError naming its variable."""
        return cls(
            data_dir=Path(_raw(env, "DATA_DIR") or DEFAULT_DATA_DIR).resolve(),
            database_url=_database_url(env),
            demo_plant=_flag(env, "DEMO_PLANT", True),
            max_upload_mb=_number(env, "MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB, unit="megabytes"),
            max_download_mb=_number(env, "MAX_DOWNLOAD_MB", DEFAULT_MAX_DOWNLOAD_MB, unit="megabytes"),
            max_clip_seconds=_number(env, "MAX_CLIP_SECONDS", DEFAULT_MAX_CLIP_SECONDS, unit="seconds"),
            max_sample_rate=_whole_number(env, "MAX_SAMPLE_RATE", DEFAULT_MAX_SAMPLE_RATE, unit="Hz"),
            notify_webhook_url=_webhook_url(env),
            notify_sns_topic_arn=_sns_topic_arn(env),
            public_url=_public_url(env),
            cloud=CloudConfig.from_env(env),
            aws_region=_region(env, "AWS_REGION"),
            aws_endpoint_url=_endpoint_url(env),
            s3_cache_dir=_folder(env, "S3_CACHE_DIR"),
            s3_cache_mb=_number(env, "S3_CACHE_MB", DEFAULT_S3_CACHE_MB, unit="megabytes"),
            tensorflow_notices=_tensorflow_notices(env),
            ray_address=_ray_address(env),
            auth=_choice(env, "AUTH", AuthMode, AuthMode.NONE),
            auth_role_claim=_raw(env, "AUTH_ROLE_CLAIM") or DEFAULT_ROLE_CLAIM,
            blind_review=_flag(env, "BLIND_REVIEW", True),
            overlap_fraction=_fraction(env, "OVERLAP_FRACTION", DEFAULT_OVERLAP_FRACTION),
            train_from_verdicts=_choice(env, "TRAIN_FROM_VERDICTS", TrainFrom, TrainFrom.TRUSTED),
            ingest_roots=_folders(env, "INGEST_ROOTS"),
        )

    @property
    def max_upload_bytes(self) -> int:
        """The upload size limit in bytes (``MAX_UPLOAD_MB`` x 10^6)."""
        return int(self.max_upload_mb * 1e6)

    @property
    def s3_cache_bytes(self) -> int:
        """The S3 cache's size limit in bytes (``S3_CACHE_MB`` x 10^6)."""
        return int(self.s3_cache_mb * 1e6)


def settings() -> Settings:
    """The settings of the current environment, read now (each call: cheap, and never stale)."""
    return Settings.from_env(os.environ)
