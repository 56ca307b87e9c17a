"""Telling people about new flags: a webhook or an AWS SNS topic, from a database outbox.

The watcher :func:`enqueue`\\ s one row per flagged clip and channel (unique, so a restart
never notifies twice); a :class:`Dispatcher` thread delivers due rows, retrying failures
with exponential backoff up to :data:`MAX_ATTEMPTS`, and never holds up ingestion.  Rows
still pending when the process stops are delivered by the next one.  Several dispatchers (two
watchers, a cron ``--once`` beside a running one) may share the outbox: each row is claimed
before it is sent, so only one of them sends it.

A webhook URL is a secret (Slack's and Teams' carry their token in the path): it is only ever
shown as its scheme and host (:func:`redact_url`), in messages and logs alike, and it is never
stored.  An outbox row names its webhook by a reference (:func:`webhook_reference`): the URL's
scheme and host (and port), what is shown, then ``sha256:`` and the first 16 hex digits of the
SHA-256 of the URL, e.g. ``https://hooks.example.com sha256:1f0c6e5b2a9d8c47``.  A sender keeps the
URLs of the channels it was started with, in memory, and resolves a row's reference among them at
send time.  A row whose URL the current process was not started with is neither sent nor lost: it
stays pending, its ``last_error`` saying "webhook https://hooks.example.com: this process was not
started with that URL", until a process started with that URL (``NOTIFY_WEBHOOK_URL`` or
``watch --webhook``) sends it.  (Migration 0007 rewrote the rows of earlier versions so.)  The
fingerprint is no way back to the URL for a webhook whose token is random; whoever can read the
database and guess the whole URL could check the guess, nothing more.  Encrypting the URL instead
would need a key in the settings, kept as secret as the URL, for no gain here.

A webhook answering with a redirect (3xx) is a failed attempt ("redirected to http://host/…: not
followed"), retried with backoff like any other; the redirect is never followed (it could lead
anywhere, an internal address included).  A webhook URL with a user name or password, or not
http(s), is refused where it comes in (:func:`channels_from`, the settings).

Configuration: ``NOTIFY_WEBHOOK_URL`` (an http(s) URL that receives a JSON POST) and/or
``NOTIFY_SNS_TOPIC_ARN`` (credentials from boto3's standard chain).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError

from core.errors import BadInputError, Reason
from core.settings import SNS_TOPIC_ARN, settings, webhook_url_problem
from core.workflows.triage import triage_link
from db.models import utcnow
from db.queries import (
    add_notification,
    claim_notification,
    due_notification_ids,
    note_pending_error,
    pending_targets,
    update_notification,
)
from db.session import session_scope, write_transaction

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 2.0  # delay before retry n is BACKOFF_BASE_S * 2**(n-1), at most BACKOFF_CAP_S
BACKOFF_CAP_S = 300.0
SEND_TIMEOUT_S = 10.0
CLAIM_LEASE_S = 120.0  # a claimed row is left to its sender this long (a send gives up after SEND_TIMEOUT_S)
FINGERPRINT_CHARS = 16  # hex digits of a webhook URL's SHA-256 kept in its outbox rows
_REFERENCE = " sha256:"  # between a stored webhook's scheme and host and its fingerprint
log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """A channel refused or could not take a notification (retried later)."""


@dataclass(frozen=True)
class Channel:
    """Where notifications go: ``kind`` is ``webhook`` or ``sns``; ``send(target, payload)`` delivers one."""

    kind: str
    target: str = field(repr=False)  # a webhook URL is a secret: see describe()
    send: Callable[[str, dict[str, Any]], None]

    def describe(self) -> str:
        """``kind`` and where to, safe to print: a webhook's scheme and host only."""
        return f"{self.kind} {redact_url(self.target) if self.kind == 'webhook' else self.target}"

    @property
    def stored_target(self) -> str:
        """What an outbox row stores as its target: for a webhook, its :func:`webhook_reference` (scheme, host
        and a fingerprint, never the URL), for SNS the topic's ARN."""
        return webhook_reference(self.target) if self.kind == "webhook" else self.target


def redact_url(url: str) -> str:
    """``url`` as its scheme and host (and port) followed by ``/…``: never its credentials, path or query,
    where webhook tokens live.  Of text that is no such URL, only what precedes the first ``/``, ``?`` or ``#``
    after any scheme is kept (and of that, nothing up to an ``@``)."""
    try:
        parts = urllib.parse.urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:  # e.g. a port that is not a number
        scheme = host = port = None
    if scheme and host:
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}{f':{port}' if port else ''}/…"
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]  # never what precedes an @ (credentials)
    shown = f"{scheme}{sep}{host}"
    return shown if shown == url else f"{shown}/…"


def webhook_fingerprint(url: str) -> str:
    """The first :data:`FINGERPRINT_CHARS` hex digits of the SHA-256 of ``url``: how an outbox row names its
    webhook, so that a process started with that URL finds it again."""
    return hashlib.sha256(url.encode()).hexdigest()[:FINGERPRINT_CHARS]


def webhook_reference(url: str) -> str:
    """What the outbox stores for a webhook: its scheme and host (and port), then ``sha256:`` and its
    fingerprint, e.g. ``https://hooks.example.com sha256:1f0c6e5b2a9d8c47``."""
    return f"{redact_url(url).removesuffix('/…')}{_REFERENCE}{webhook_fingerprint(url)}"


def unknown_webhook_error(reference: str) -> str:
    """The ``last_error`` of a pending webhook row that this process cannot send: not started with its URL."""
    shown, mark, _ = reference.rpartition(_REFERENCE)
    shown = shown if mark else redact_url(reference).removesuffix("/…")
    return f"webhook {shown}: this process was not started with that URL"


def _without_url(text: str, url: str) -> str:
    """``text`` with ``url``, and its path, query and credentials, replaced by their redacted form."""
    text = text.replace(url, redact_url(url))
    try:
        parts = urllib.parse.urlsplit(url)
        secrets = [parts.path if len(parts.path) > 1 else "", parts.query, parts.fragment, parts.password or ""]
    except ValueError:
        return text
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text


def post_webhook(url: str, payload: dict[str, Any]) -> None:
    """POST ``payload`` as JSON; any answer but 2xx (a redirect included: never followed), or no answer within
    the timeout, is a DeliveryError (whose message never holds the URL's credentials, path or query)."""
    try:
        _post(url, payload)
    except DeliveryError as exc:
        raise DeliveryError(_without_url(str(exc), url)) from None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect (301, 302, 303, 307, 308) is a failed attempt, never followed: a webhook answering with one
    could send the flag, and the process's requests, anywhere (an internal address included)."""

    def http_error_302(self, req, fp, code, msg, headers):  # urllib's hook, for each redirect code
        fp.close()
        location = headers.get("Location") or headers.get("URI")
        where = redact_url(urllib.parse.urljoin(req.full_url, location)) if location else "nowhere"
        raise DeliveryError(f"webhook answered HTTP {code}, redirected to {where}: not followed")

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _post(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    opener = urllib.request.build_opener(_RefuseRedirects)  # per send: proxy variables as they are now
    try:
        with opener.open(request, timeout=SEND_TIMEOUT_S) as response:  # noqa: S310 (configured URL)
            if not 200 <= response.status < 300:
                raise DeliveryError(f"webhook answered HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"webhook unreachable: {getattr(exc, 'reason', exc)}") from None
    except (http.client.HTTPException, ValueError) as exc:  # an answer that is not HTTP, a bad URL
        raise DeliveryError(f"webhook failed: {type(exc).__name__}: {exc}") from None


def sns_sender(client=None) -> Callable[[str, dict[str, Any]], None]:
    """A sender publishing to an SNS topic ARN with ``client`` (a boto3 SNS client; made when None)."""

    def publish(topic_arn: str, payload: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        nonlocal client
        try:
            if client is None:
                import boto3

                client = boto3.client("sns", region_name=topic_arn.split(":")[3] or None)
            client.publish(TopicArn=topic_arn, Subject=payload["subject"][:100], Message=json.dumps(payload))
        except (BotoCoreError, ClientError) as exc:
            raise DeliveryError(f"SNS publish failed: {exc}") from None

    return publish


def channels_from(
    webhook_url: str | None = None, sns_topic_arn: str | None = None, *, sns_client=None,
    webhook_option: str = "the webhook URL",
) -> list[Channel]:  # fmt: skip
    """The configured channels: the arguments, else the ``NOTIFY_WEBHOOK_URL`` / ``NOTIFY_SNS_TOPIC_ARN`` settings.
    A bad ``webhook_url`` (not http(s), or with a user name or password) is refused naming ``webhook_option``
    (the CLI's ``--webhook``), showing its scheme and host only."""
    if not (webhook_url and sns_topic_arn):  # the settings are read (and checked) only when needed
        current = settings()
        webhook_url = webhook_url or current.notify_webhook_url
        sns_topic_arn = sns_topic_arn or current.notify_sns_topic_arn
    out = []
    if webhook_url:
        problem = webhook_url_problem(webhook_url)
        if problem:
            raise BadInputError(Reason.INVALID_PARAMETER,
                                f"{webhook_option} {problem}, got {redact_url(webhook_url)!r}")  # fmt: skip
        out.append(Channel("webhook", webhook_url, post_webhook))
    if sns_topic_arn:
        if not SNS_TOPIC_ARN.match(sns_topic_arn):
            raise BadInputError(Reason.INVALID_PARAMETER, f"not an SNS topic ARN: {sns_topic_arn!r}")
        out.append(Channel("sns", sns_topic_arn, sns_sender(sns_client)))
    return out


def flag_payload(clip, machine: str, model, score: float, threshold: float) -> dict[str, Any]:
    """What a notification says about one flagged clip; with ``PUBLIC_URL`` set, ``link`` opens it on the Triage
    page (:func:`core.workflows.triage.triage_link`)."""
    payload = {
        "event": "clip_flagged",
        "subject": f"Anomaly flagged on {machine}",
        "machine": machine,
        "clip_id": clip.id,
        "path": clip.path,
        "score": round(float(score), 6),
        "threshold": round(float(threshold), 6),
        "model": f"{model.detector} v{model.version}",
        "ingested_at": clip.ingested_at.isoformat(timespec="seconds") if clip.ingested_at else None,
    }
    link = triage_link(machine, clip.id)
    return payload | ({"link": link} if link else {})


def enqueue(flags: list[tuple[int, int, dict[str, Any]]], channels: list[Channel], *, url: str | None = None) -> int:
    """Add an outbox row per ``(clip_id, model_id, payload)`` and channel (to the channel's
    :attr:`Channel.stored_target`: never a webhook's URL); rows that exist are left.  Returns how many were added."""
    added = 0
    for clip_id, model_id, payload in flags:
        for channel in channels:
            add = partial(add_notification, clip_id=clip_id, model_id=model_id, channel=channel.kind,
                          target=channel.stored_target, payload=payload)  # fmt: skip
            try:
                added += write_transaction(add, url, attempts=3)
            except IntegrityError:  # another watcher enqueued it meanwhile: already there
                continue
    return added


def backoff_s(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed try."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempts - 1, 0))


def deliver_due(
    channels: list[Channel], *, url: str | None = None, limit: int = 50, until: float | None = None
) -> dict[str, int]:
    """Send every pending notification that is due (those of the given channels); returns
    ``{"sent": n, "retrying": n, "failed": n}``.  ``until`` (a :func:`time.monotonic` time): send
    nothing more once it has passed (the rest stays pending).

    A webhook row is sent only by a process started with its URL (the row holds the URL's fingerprint,
    not the URL): the others leave it pending, saying so in its ``last_error`` (:func:`unknown_webhook_error`).
    An SNS row goes to the topic stored with it.

    Each row is claimed before it is sent (its next attempt moved :data:`CLAIM_LEASE_S` ahead, if it is
    still pending and due): of several dispatchers, only the one whose claim took it sends it.  A row
    whose sender died after claiming it is due again once the lease has passed."""
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    if not channels:
        return counts
    routes = {(c.kind, c.stored_target): c for c in channels}
    webhooks = [c.stored_target for c in channels if c.kind == "webhook"]
    with session_scope(url) as session:  # others: for a process with them
        due = due_notification_ids(session, sorted({c.kind for c in channels}), utcnow(), limit,
                                   only_targets={"webhook": webhooks})  # fmt: skip
    _note_unknown_webhooks(webhooks, url)
    for row_id in due:
        if until is not None and time.monotonic() >= until:
            break
        now = utcnow()
        row = write_transaction(partial(claim_notification, notification_id=row_id, now=now,
                                        lease_until=now + timedelta(seconds=CLAIM_LEASE_S)), url)  # fmt: skip
        if row is None:  # another dispatcher took it (or sent it) meanwhile
            continue
        changes, outcome = _attempt(row, routes.get((row.channel, row.target)), channels)
        if outcome:
            counts[outcome] += 1
        write_transaction(partial(update_notification, notification_id=row.id, **changes), url)
    return counts


def _attempt(row, channel: Channel | None, channels: list[Channel]) -> tuple[dict[str, Any], str | None]:
    """Send outbox ``row`` through ``channel`` (the one it was enqueued for; for SNS, else any SNS channel, to the
    topic stored with the row): the row's changes and ``sent``, ``retrying`` or ``failed`` (``None``: not tried,
    a webhook this process does not know)."""
    if channel is None and row.channel == "webhook":
        return {"last_error": unknown_webhook_error(row.target), "next_attempt_at": utcnow()}, None
    if channel is None:
        channel = next(c for c in channels if c.kind == row.channel)
        channel = Channel(channel.kind, row.target, channel.send)
    try:
        channel.send(channel.target, row.payload)
        return {"status": "sent", "sent_at": utcnow(), "attempts": row.attempts + 1, "last_error": ""}, "sent"
    except Exception as exc:  # any failure is one failed try: it must never stall the rows after it
        error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
        if row.channel == "webhook":
            error = _without_url(error, channel.target)
        attempts = row.attempts + 1
        gave_up = attempts >= MAX_ATTEMPTS
        log.warning("notification %s via %s: %s (attempt %d)", row.id, row.channel, error, attempts)
        changes = {"attempts": attempts, "last_error": error, "status": "failed" if gave_up else "pending",
                   "next_attempt_at": utcnow() + timedelta(seconds=backoff_s(attempts))}  # fmt: skip
        return changes, "failed" if gave_up else "retrying"


def _note_unknown_webhooks(known: list[str], url: str | None) -> None:
    """Pending webhook rows for URLs this process was not started with (none of ``known``, the stored targets
    of its webhooks) get :func:`unknown_webhook_error` as their ``last_error``; they stay pending, for a
    process started with their URL.  A process without a webhook leaves webhook rows alone."""
    if not known:
        return
    with session_scope(url) as session:
        seen = pending_targets(session, "webhook", exclude=known)
    for target in sorted({target for target, error in seen if error != unknown_webhook_error(target)}):
        write_transaction(partial(note_pending_error, channel="webhook", target=target,
                                  error=unknown_webhook_error(target)), url)  # fmt: skip


class Dispatcher:
    """A daemon thread calling :func:`deliver_due` every ``interval_s`` seconds until :meth:`stop`."""

    def __init__(self, channels: list[Channel], *, url: str | None = None, interval_s: float = 1.0):
        self.channels, self.url, self.interval_s = channels, url, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notification-dispatcher", daemon=True)

    def start(self) -> Dispatcher:
        if self.channels:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                deliver_due(self.channels, url=self.url)
            except Exception:  # a database hiccup must not kill the sender; the rows stay pending
                log.exception("notification dispatcher")
            self._stop.wait(self.interval_s)

    def stop(self, timeout_s: float = 5.0, *, flush_s: float = 0.0) -> None:
        """Stop after the current pass (pending rows stay in the outbox for the next run).  ``flush_s`` > 0:
        then send what is due, for that long at most (not while a send of the thread is still in flight)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if flush_s > 0 and self.channels and not self._thread.is_alive():
            try:
                deliver_due(self.channels, url=self.url, until=time.monotonic() + flush_s)
            except Exception:
                log.exception("notification dispatcher (final pass)")
