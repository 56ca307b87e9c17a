"""webhook targets: scheme and host plus a fingerprint, never the URL

Until now a webhook notification stored its full URL as its target, and a webhook URL is a
secret (Slack's and Teams' carry their token in the path).  Each webhook row's target becomes
what ``core.workflows.notify.webhook_reference`` gives today: the URL's scheme and host (and
port), then `` sha256:`` and the first 16 hex digits of the SHA-256 of the URL, e.g.
``https://hooks.example.com sha256:1f0c6e5b2a9d8c47``.  A watcher started with that URL sends
the pending rows; others leave them pending.  Any piece of the URL (its path, query, fragment or
password) that a row's ``last_error`` still held is replaced by ``…``.

The rewriting is a frozen copy of the live code as it stood when this revision was written: a
migration is a snapshot and never imports live code.

Downgrading keeps the rewritten targets (the URLs are gone): the code of 0006 cannot send
those rows, and gives them up after its retries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 09:00:00
"""

import hashlib
import re
import urllib.parse

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_REFERENCE = " sha256:"
_FINGERPRINT_CHARS = 16


def _origin(url: str) -> str:
    """Scheme and host (and port) of ``url``; of text that is no such URL, what precedes its first ``/``, ``?``
    or ``#`` after any scheme, without anything up to an ``@`` (``redact_url`` of 0007, without its ``/…``)."""
    try:
        parts = urllib.parse.urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:
        scheme = host = port = None
    if scheme and host:
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}{f':{port}' if port else ''}"
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    return f"{scheme}{sep}{re.split(r'[/?#]', rest, maxsplit=1)[0].rpartition('@')[2]}"


def _reference(url: str) -> str:
    return f"{_origin(url)}{_REFERENCE}{hashlib.sha256(url.encode()).hexdigest()[:_FINGERPRINT_CHARS]}"


def _scrubbed(text: str, url: str) -> str:
    """``text`` without ``url`` or its path, query, fragment or password."""
    text = text.replace(url, _origin(url))
    try:
        parts = urllib.parse.urlsplit(url)
        secrets = [parts.path if len(parts.path) > 1 else "", parts.query, parts.fragment, parts.password or ""]
    except ValueError:
        return text
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text


def upgrade() -> None:
    connection = op.get_bind()
    found = connection.execute(
        sa.text("SELECT id, target, last_error FROM notifications WHERE channel = 'webhook'")
    ).fetchall()
    rewrite = sa.text("UPDATE notifications SET target = :target, last_error = :last_error WHERE id = :id")
    for row_id, target, last_error in found:
        if re.search(r" sha256:[0-9a-f]{16}$", target):  # already a reference
            continue
        connection.execute(
            rewrite, {"id": row_id, "target": _reference(target), "last_error": _scrubbed(last_error or "", target)}
        )


def downgrade() -> None:
    pass  # the URLs are not kept anywhere: nothing to put back
