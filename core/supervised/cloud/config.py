"""Where supervised training runs in AWS, and whether it can: the boto3 session and the credentials check.

The settings themselves (``REKOGNITION_*``: bucket, prefix, project, region, profile, inference units
and their price) are read and validated by :mod:`core.settings`, where every environment variable is;
:class:`CloudConfig` and its defaults are re-exported here for the code that imports them from this module.
"""

from __future__ import annotations

from functools import lru_cache

from core.settings import (
    DEFAULT_COST_PER_UNIT_HOUR,
    DEFAULT_PREFIX,
    DEFAULT_PROJECT,
    CloudConfig,
    settings,
)

__all__ = [
    "DEFAULT_COST_PER_UNIT_HOUR",
    "DEFAULT_PREFIX",
    "DEFAULT_PROJECT",
    "CloudConfig",
    "boto3_session",
    "forget_credentials_check",
    "unavailable_reason",
]


def boto3_session(config: CloudConfig):
    """A boto3 session for ``config``'s profile and region (credentials from boto3's chain).

    Without a configured region, the ``AWS_REGION`` setting is honoured as the other AWS SDKs do
    (botocore itself reads only ``AWS_DEFAULT_REGION`` and ``~/.aws/config``)."""
    import boto3

    return boto3.Session(profile_name=config.profile, region_name=config.region or settings().aws_region)


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
