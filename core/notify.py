"""Telling people about new flags: a webhook or an AWS SNS topic, from a database outbox.

The watcher :func:`enqueue`\\ s one row per flagged clip and channel (unique, so a restart
never notifies twice); a :class:`Dispatcher` thread delivers due rows, retrying failures
with exponential backoff up to :data:`MAX_ATTEMPTS`, and never holds up ingestion.  Rows
still pending when the process stops are delivered by the next one.

Configuration: ``NOTIFY_WEBHOOK_URL`` (an http(s) URL that receives a JSON POST) and/or
``NOTIFY_SNS_TOPIC_ARN`` (credentials from boto3's standard chain).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.errors import BadInputError, Reason
from db.models import Notification, utcnow
from db.session import session_scope, write_transaction

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 2.0  # delay before retry n is BACKOFF_BASE_S * 2**(n-1), at most BACKOFF_CAP_S
BACKOFF_CAP_S = 300.0
SEND_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """A channel refused or could not take a notification (retried later)."""


@dataclass(frozen=True)
class Channel:
    """Where notifications go: ``kind`` is ``webhook`` or ``sns``; ``send(target, payload)`` delivers one."""

    kind: str
    target: str
    send: Callable[[str, dict[str, Any]], None]


def post_webhook(url: str, payload: dict[str, Any]) -> None:
    """POST ``payload`` as JSON; any answer but 2xx, or no answer within the timeout, is a DeliveryError."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as response:  # noqa: S310 (configured URL)
            if not 200 <= response.status < 300:
                raise DeliveryError(f"webhook answered HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"webhook unreachable: {getattr(exc, 'reason', exc)}") from None


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
    webhook_url: str | None = None, sns_topic_arn: str | None = None, *, sns_client=None
) -> list[Channel]:
    """The configured channels: the arguments, else ``NOTIFY_WEBHOOK_URL`` / ``NOTIFY_SNS_TOPIC_ARN``."""
    webhook_url = webhook_url or os.environ.get("NOTIFY_WEBHOOK_URL") or None
    sns_topic_arn = sns_topic_arn or os.environ.get("NOTIFY_SNS_TOPIC_ARN") or None
    out = []
    if webhook_url:
        if not webhook_url.startswith(("http://", "https://")):
            raise BadInputError(Reason.INVALID_PARAMETER, f"webhook must be an http(s) URL, got {webhook_url!r}")
        out.append(Channel("webhook", webhook_url, post_webhook))
    if sns_topic_arn:
        if not sns_topic_arn.startswith("arn:") or sns_topic_arn.count(":") < 5:
            raise BadInputError(Reason.INVALID_PARAMETER, f"not an SNS topic ARN: {sns_topic_arn!r}")
        out.append(Channel("sns", sns_topic_arn, sns_sender(sns_client)))
    return out


def flag_payload(clip, machine: str, model, score: float, threshold: float) -> dict[str, Any]:
    """What a notification says about one flagged clip."""
    return {
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


def enqueue(flags: list[tuple[int, int, dict[str, Any]]], channels: list[Channel], *, url: str | None = None) -> int:
    """Add an outbox row per ``(clip_id, model_id, payload)`` and channel; rows that exist are left.
    Returns how many were added."""
    added = 0
    for clip_id, model_id, payload in flags:
        for channel in channels:

            def add(session, clip_id=clip_id, model_id=model_id, payload=payload, channel=channel) -> int:
                exists = session.scalar(select(Notification.id).where(
                    Notification.clip_id == clip_id, Notification.model_id == model_id,
                    Notification.channel == channel.kind))  # fmt: skip
                if exists:
                    return 0
                session.add(Notification(clip_id=clip_id, model_id=model_id, channel=channel.kind,
                                         target=channel.target, payload=payload))  # fmt: skip
                return 1

            try:
                added += write_transaction(add, url, attempts=3)
            except IntegrityError:  # another watcher enqueued it meanwhile: already there
                continue
    return added


def backoff_s(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed try."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempts - 1, 0))


def deliver_due(channels: list[Channel], *, url: str | None = None, limit: int = 50) -> dict[str, int]:
    """Send every pending notification that is due; returns ``{"sent": n, "retrying": n, "failed": n}``."""
    senders = {c.kind: c.send for c in channels}
    with session_scope(url) as session:
        due = list(session.scalars(
            select(Notification).where(Notification.status == "pending", Notification.next_attempt_at <= utcnow())
            .order_by(Notification.id).limit(limit)))  # fmt: skip
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    for row in due:
        send = senders.get(row.channel)
        if send is None:
            continue  # that channel is not configured in this process: leave it for one that is
        try:
            send(row.target, row.payload)
            changes = {"status": "sent", "sent_at": utcnow(), "attempts": row.attempts + 1, "last_error": ""}
            counts["sent"] += 1
        except DeliveryError as exc:
            attempts = row.attempts + 1
            gave_up = attempts >= MAX_ATTEMPTS
            changes = {"attempts": attempts, "last_error": str(exc), "status": "failed" if gave_up else "pending",
                       "next_attempt_at": utcnow() + timedelta(seconds=backoff_s(attempts))}  # fmt: skip
            counts["failed" if gave_up else "retrying"] += 1
            log.warning("notification %s via %s: %s (attempt %d)", row.id, row.channel, exc, attempts)

        def save(session, row_id=row.id, changes=changes) -> None:
            stored = session.get(Notification, row_id)
            for name, value in changes.items():
                setattr(stored, name, value)

        write_transaction(save, url)
    return counts


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

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the current pass (pending rows stay in the outbox for the next run)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
