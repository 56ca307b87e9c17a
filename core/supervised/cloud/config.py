"""Where supervised training runs in AWS: region, profile, bucket, prefix, project, cost.

Read from the environment (and overridable per command)::

    REKOGNITION_BUCKET   S3 bucket for images, manifests and training output (required)
    REKOGNITION_PREFIX   key prefix inside it (default "machine-sound")
    REKOGNITION_PROJECT  Rekognition Custom Labels project name (default "machine-sound-anomalies")
    REKOGNITION_REGION   AWS region (default: boto3's, e.g. AWS_REGION or ~/.aws/config)
    REKOGNITION_PROFILE  named profile in ~/.aws (default: boto3's)
    REKOGNITION_INFERENCE_UNITS     inference units started for an evaluation (default 1)
    REKOGNITION_COST_PER_UNIT_HOUR  USD per inference-unit hour, shown before starting (default 4.00)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

from core.errors import BadInputError, Reason

DEFAULT_PREFIX = "machine-sound"
DEFAULT_PROJECT = "machine-sound-anomalies"
DEFAULT_COST_PER_UNIT_HOUR = 4.00  # USD, us-east-1 list price of Custom Labels inference; check your region


@dataclass(frozen=True)
class CloudConfig:
    bucket: str | None = None
    prefix: str = DEFAULT_PREFIX
    project: str = DEFAULT_PROJECT
    region: str | None = None
    profile: str | None = None
    inference_units: int = 1
    cost_per_unit_hour: float = DEFAULT_COST_PER_UNIT_HOUR

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CloudConfig:
        try:
            return cls(
                bucket=env.get("REKOGNITION_BUCKET") or None,
                prefix=(env.get("REKOGNITION_PREFIX") or DEFAULT_PREFIX).strip("/"),
                project=env.get("REKOGNITION_PROJECT") or DEFAULT_PROJECT,
                region=env.get("REKOGNITION_REGION") or None,
                profile=env.get("REKOGNITION_PROFILE") or None,
                inference_units=int(env.get("REKOGNITION_INFERENCE_UNITS") or 1),
                cost_per_unit_hour=float(env.get("REKOGNITION_COST_PER_UNIT_HOUR") or DEFAULT_COST_PER_UNIT_HOUR),
            )
        except ValueError as exc:
            raise BadInputError(Reason.INVALID_PARAMETER, f"bad REKOGNITION_* setting: {exc}") from None

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

    def cost_notice(self) -> str:
        return (
            f"Evaluating starts the model on {self.inference_units} inference unit(s) at about "
            f"${self.cost_per_unit_hour:.2f} per inference-unit hour (${self.hourly_cost:.2f}/h, billed while it runs, "
            "including start-up); it is stopped as soon as the test images are scored, also on error."
        )


def boto3_session(config: CloudConfig):
    """A boto3 session for ``config``'s profile and region (credentials from boto3's chain).

    Without a configured region, ``AWS_REGION`` is honoured as the other AWS SDKs do
    (botocore itself reads only ``AWS_DEFAULT_REGION`` and ``~/.aws/config``)."""
    import boto3

    return boto3.Session(profile_name=config.profile, region_name=config.region or os.environ.get("AWS_REGION") or None)


@lru_cache(maxsize=8)
def _credentials_found(profile: str | None, region: str | None) -> str | None:
    """None when boto3 finds credentials and a region, else why not (cached: the lookup may wait on IMDS)."""
    import botocore.exceptions

    try:
        session = boto3_session(CloudConfig(profile=profile, region=region))
        if session.get_credentials() is None:
            return "no AWS credentials found (environment, ~/.aws or an instance role)"
        if not session.region_name:
            return "no AWS region configured (set REKOGNITION_REGION or AWS_REGION)"
    except botocore.exceptions.BotoCoreError as exc:
        return f"AWS configuration problem: {exc}"
    return None


def unavailable_reason(config: CloudConfig) -> str | None:
    """Why Rekognition training cannot start with ``config``, or None when it can."""
    if not config.bucket:
        return "no S3 bucket configured (set REKOGNITION_BUCKET)"
    return _credentials_found(config.profile, config.region)


def forget_credentials_check() -> None:
    """Look for credentials again next time (after the user configured them)."""
    _credentials_found.cache_clear()
