"""Event-driven ingestion: S3 ``ObjectCreated`` events delivered through an SQS queue are ingested, scored and,
when flagged, announced, as ``watch DIR`` does for a folder.

At least once, and idempotent: a message is deleted only once every object it names is stored (registered, or
already known by its content), or refused for good with its reason (not audio, corrupt, too long...:
recorded like any refused file); a redelivered or duplicated event finds its clip already known.  A message
whose object could not be read (``not_found``, or a failure that is no fault of the file: AWS refusing, a bug)
stays on the queue and is received again after ``retry_s`` seconds.

Poison messages are counted and set aside, never retried forever:

* a message that is not an S3 event notification (nor one wrapped in an SNS message) is set aside at once;
* a message whose objects failed to be read on its ``max_receive``-th receipt (SQS's
  ``ApproximateReceiveCount``) is set aside.

Set aside means: when the queue has a redrive policy (a dead-letter queue configured in SQS), nothing is done:
SQS itself moves a message received ``maxReceiveCount`` times to its dead-letter queue; otherwise the message
is sent to ``dead_letter_queue`` (when given, with its reason as the message attribute ``reason``) and deleted;
without either, it is recorded as a refused input (path ``sqs://QUEUE/MESSAGE-ID``, with its reason) and deleted.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from core.errors import BadInputError, CloudError, Reason
from core.workflows.clip_store import S3_SCHEME, client
from core.workflows.ingest import IngestReport, ingest
from core.workflows.notify import Channel
from core.workflows.scoring import score
from core.workflows.watch import PollReport, Watcher
from db.queries import record_rejection
from db.session import write_transaction

DEFAULT_MAX_RECEIVE = 5
RECEIVE_BATCHES = 10  # at most this many receives of 10 messages per pass
RETRY_REASONS = frozenset({Reason.NOT_FOUND.value, Reason.UNEXPECTED.value})  # failures that may pass on a retry
log = logging.getLogger(__name__)


@dataclass
class QueuePollReport(PollReport):
    """What one pass over the queue did: :class:`PollReport`'s counts, and the messages'."""

    messages: int = 0  # received this pass
    deleted: int = 0  # done with: their objects stored or refused for good
    retrying: int = 0  # left on the queue, to be received again
    poison: int = 0  # set aside this pass

    @property
    def busy(self) -> bool:
        return super().busy or bool(self.messages)


def s3_event_uris(body: str) -> list[str]:
    """The ``s3://BUCKET/KEY`` URIs of the ``ObjectCreated`` records of an S3 event notification (the message
    body, or an SNS notification wrapping one); ``[]`` for S3's ``s3:TestEvent`` and for events of other kinds.

    Raises BadInputError (``invalid_parameter``) when ``body`` is not an S3 event notification."""
    try:
        event = json.loads(body)
        if isinstance(event, dict) and event.get("Type") == "Notification" and "Message" in event:  # through SNS
            event = json.loads(event["Message"])
    except (TypeError, ValueError):
        raise BadInputError(Reason.INVALID_PARAMETER, "the message is not JSON, so no S3 event") from None
    if isinstance(event, dict) and event.get("Event") == "s3:TestEvent":
        return []
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        raise BadInputError(Reason.INVALID_PARAMETER, "the message holds no S3 event records")
    uris = []
    for record in records:
        try:
            if record.get("eventSource", "aws:s3") != "aws:s3":
                raise KeyError("eventSource")
            if not str(record["eventName"]).startswith("ObjectCreated"):
                continue
            bucket, key = record["s3"]["bucket"]["name"], urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        except (AttributeError, KeyError, TypeError):
            raise BadInputError(Reason.INVALID_PARAMETER, "a record of the message is not an S3 event") from None
        if not (isinstance(bucket, str) and bucket and isinstance(key, str) and key):
            raise BadInputError(Reason.INVALID_PARAMETER, "an S3 event record names no bucket or key")
        if key.endswith("/"):  # a "folder" the console made: no clip, and never a prefix to ingest whole
            continue
        uris.append(f"{S3_SCHEME}{bucket}/{key}")
    return uris


class QueueWatcher(Watcher):
    """Watches the SQS queue ``queue_url``; call :meth:`poll` repeatedly, or :meth:`run` (see the module)."""

    def __init__(
        self, queue_url: str, *, dead_letter_queue: str | None = None, max_receive: int = DEFAULT_MAX_RECEIVE,
        wait_s: int = 1, retry_s: int = 30, url: str | None = None, lookback_s: float = 3600.0,
        channels: list[Channel] | None = None, n_jobs: int | None = 1, clock: Callable[[], float] = time.time,
    ):  # fmt: skip
        """``wait_s``: how long a receive waits for messages (SQS long polling, 0-20 s); ``retry_s``: when a
        message whose objects failed is received again (its visibility timeout, 0-43200 s)."""
        if max_receive < 1 or not 0 <= wait_s <= 20 or not 0 <= retry_s <= 43_200:
            raise BadInputError(Reason.INVALID_PARAMETER, f"max_receive must be >= 1, wait_s 0-20 and retry_s "
                                f"0-43200, got {max_receive}, {wait_s}, {retry_s}")  # fmt: skip
        self.queue_url, self.dead_letter_queue, self.max_receive = queue_url, dead_letter_queue, max_receive
        self.wait_s, self.retry_s = wait_s, retry_s
        self.url, self.channels, self.n_jobs, self.clock = url, channels or [], n_jobs, clock
        self.since = datetime.fromtimestamp(clock(), UTC) - timedelta(seconds=lookback_s)
        self._flag_scope = S3_SCHEME  # flags among the clips stored in S3
        self._needs_scoring = True  # the first pass scores what a killed predecessor ingested but never scored
        self._flag_marks: dict[tuple[int, int | None], int] = {}
        self.sqs = client("sqs")
        self.redrive = self._call("reading the attributes of", self.queue_url, partial(
            self.sqs.get_queue_attributes, QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]),
        ).get("Attributes", {}).get("RedrivePolicy")  # fmt: skip
        self.poison_total = 0

    def describe(self) -> str:
        """Where messages go when they are set aside (for the start-up line)."""
        if self.redrive:
            return "poison messages: the queue's own dead-letter queue (redrive policy)"
        if self.dead_letter_queue:
            return f"poison messages after {self.max_receive} receipts: {self.dead_letter_queue}"
        return f"poison messages after {self.max_receive} receipts: recorded as refused and deleted"

    @staticmethod
    def _call(operation: str, where: str, call: Callable[[], dict]) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except (ClientError, BotoCoreError) as exc:
            error = (getattr(exc, "response", None) or {}).get("Error", {})
            said = f"{error.get('Code')}: {error.get('Message') or 'no message'}" if error.get("Code") else str(exc)
            raise CloudError(f"{operation} {where} failed: {said}") from None

    def receive(self) -> list[dict]:
        """Up to ``RECEIVE_BATCHES`` x 10 messages waiting now (the first receive waits up to ``wait_s``)."""
        messages: list[dict] = []
        for batch in range(RECEIVE_BATCHES):
            got = self._call("receiving from", self.queue_url, partial(
                self.sqs.receive_message, QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                WaitTimeSeconds=self.wait_s if batch == 0 else 0,
                MessageSystemAttributeNames=["ApproximateReceiveCount"])).get("Messages", [])  # fmt: skip
            messages += got
            if len(got) < 10:
                break
        return messages

    def poll(self) -> QueuePollReport:
        """One pass: receive what waits, ingest the objects of its S3 events, delete the messages that are done,
        set poison aside, score what is unscored, enqueue notifications of new flags."""
        report = QueuePollReport()
        messages = self.receive()
        report.messages = len(messages)
        events: list[tuple[dict, list[str]]] = []
        for message in messages:
            try:
                events.append((message, s3_event_uris(message.get("Body", ""))))
            except BadInputError as exc:
                self._set_aside(message, exc.reason.value, exc.detail, report, at_once=True)
        uris = sorted({uri for _, found in events for uri in found})
        failed: dict[str, dict[str, str]] = {}
        if uris:
            needed, self._needs_scoring = self._needs_scoring, True  # should ingest fail, the next pass scores
            ingested = self._ingest(uris)
            report.ingested, report.already_known = ingested.ingested, ingested.already_known
            report.rejected += ingested.rejected
            failed = {r["path"]: r for r in ingested.rejected if r["reason"] in RETRY_REASONS}
            self._needs_scoring = needed or ingested.ingested > 0
        for message, found in events:
            problems = [failed[uri] for uri in found if uri in failed]
            if not problems:
                self._delete(message)
                report.deleted += 1
            else:
                first = problems[0]
                self._set_aside(message, first["reason"], f"{first['path']}: {first['detail']}", report)
        if self._needs_scoring:  # kept when scoring fails: the next pass tries again
            report.scored = score(url=self.url, n_jobs=self.n_jobs).scored
            self._needs_scoring = False
        report.flagged = self._enqueue_flags(set(uris))
        return report

    def _ingest(self, uris: list[str]) -> IngestReport:
        """Ingest ``uris``; when S3 refuses (access denied, no credentials: a :class:`CloudError`), each URI alone,
        a refused one reported as ``unexpected_error`` so that its message is retried, then set aside, never
        stalling the queue."""
        try:
            return ingest(uris, url=self.url, n_jobs=self.n_jobs)
        except CloudError:
            if len(uris) > 1:
                return IngestReport.combined([self._ingest([uri]) for uri in uris])
            log.warning("S3 refused %s", uris[0], exc_info=True)
            refused = {"path": uris[0], "reason": Reason.UNEXPECTED.value,
                       "detail": "S3 refused to read it (see the log); it will be tried again"}  # fmt: skip
            return IngestReport(rejected=[refused])

    def _delete(self, message: dict) -> None:
        self._call("deleting a message from", self.queue_url, partial(
            self.sqs.delete_message, QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]))  # fmt: skip

    def _set_aside(self, message: dict, reason: str, detail: str, report: QueuePollReport, at_once=False) -> None:
        """Leave a failed message for another try, or set it aside as poison (see the module)."""
        receipts = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        if self.redrive or (not at_once and receipts < self.max_receive):  # SQS's dead-letter queue, or a retry
            self._call("delaying a message of", self.queue_url, partial(
                self.sqs.change_message_visibility, QueueUrl=self.queue_url,
                ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=self.retry_s))  # fmt: skip
            report.retrying += 1
            return
        why = f"set aside after {receipts} receipt(s): {detail}"
        log.warning("poison message %s on %s: %s", message.get("MessageId"), self.queue_url, why)
        if self.dead_letter_queue:
            self._call("sending a message to", self.dead_letter_queue, partial(
                self.sqs.send_message, QueueUrl=self.dead_letter_queue, MessageBody=message.get("Body") or "(empty)",
                MessageAttributes={"reason": {"DataType": "String", "StringValue": f"{reason}: {why}"}}))  # fmt: skip
        else:
            where = f"sqs://{self.queue_url.rstrip('/').rsplit('/', 1)[-1]}/{message.get('MessageId')}"
            write_transaction(lambda session: record_rejection(session, where, reason, why), self.url)
            report.rejected.append({"path": where, "reason": reason, "detail": why})
        self._delete(message)
        report.poison += 1
        self.poison_total += 1
