"""Cloud services through boto3: configuration, S3 uploads, retries with backoff.

Credentials come only from boto3's standard chain (environment, ``~/.aws``, an
instance or container role); nothing here stores or prints them.
"""

from __future__ import annotations

from core.errors import CloudError

__all__ = ["CloudError", "describe_client_error"]


def describe_client_error(exc: Exception, operation: str) -> CloudError:
    """A :class:`CloudError` for a botocore ``ClientError`` (or any exception) raised by ``operation``."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    code, message = error.get("Code"), error.get("Message")
    if code:
        hint = " (check the IAM permissions of these credentials)" if "AccessDenied" in code else ""
        return CloudError(f"{operation} failed: {code}: {message or 'no message'}{hint}")
    return CloudError(f"{operation} failed: {exc}")
