"""core.workflows.notify: the outbox of flag notifications, delivered by webhook (a real local HTTP server) or
AWS SNS (moto), with retries and backoff, in a background thread."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import select, update

import core.workflows.notify as notify
from core.errors import BadInputError
from core.workflows.notify import Channel, Dispatcher, backoff_s, channels_from, deliver_due, enqueue, flag_payload
from db.models import Clip, DetectorModel, Machine, Notification, utcnow
from db.session import session_scope
from tests.conftest import wait_for

TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:machine-flags"

# --- a real webhook receiver ----------------------------------------------------------------------------------


class Receiver:
    """What a local webhook server got, and how it answers: ``statuses`` are used in turn (200 after them),
    ``hold`` (when set up) keeps each request open until released, ``garbage`` answers with no HTTP at all,
    ``location`` goes with every answer as its ``Location`` header.  ``hits``: every request's method and path."""

    def __init__(self) -> None:
        self.url = ""
        self.statuses: list[int] = []
        self.received: list[dict] = []
        self.headers: list[dict] = []
        self.garbage = False
        self.location: str | None = None
        self.hits: list[tuple[str, str]] = []
        self.hold: threading.Event | None = None
        self.started = threading.Event()  # a request arrived
        self.finished = threading.Event()  # a held request was answered
        self.lock = threading.Lock()


@contextmanager
def webhook_server() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (what a followed 302/303 would send)
            with receiver.lock:
                receiver.hits.append(("GET", self.path))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.hits.append(("POST", self.path))
                receiver.received.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
            receiver.started.set()
            if receiver.hold is not None:
                receiver.hold.wait(10)
            if receiver.garbage:
                self.wfile.write(b"THIS IS NOT HTTP\r\n\r\n")
                self.wfile.flush()
                return
            self.send_response(status)
            if receiver.location:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            receiver.finished.set()

        def log_message(self, *args) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/hooks/flags"
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with webhook_server() as receiver:
        yield receiver


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """urllib honours proxy variables: the local server must be reached directly."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NOTIFY_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("NOTIFY_SNS_TOPIC_ARN", raising=False)


# --- outbox rows over real clips and models -------------------------------------------------------------------


def make_flags(n: int = 1, url: str | None = None) -> list[tuple[int, int, dict]]:
    """``n`` flagged clips of fan/id_00 and the model that flagged them: ``(clip_id, model_id, payload)``."""
    with session_scope(url) as session:
        machine = Machine(machine_type="fan", machine_id="id_00")
        model = DetectorModel(detector="mahalanobis", scope="fan/id_00", version=1)
        session.add_all([machine, model])
        session.flush()
        clips = [
            Clip(path=f"/drop/fan/id_00/{k:03d}.wav", content_hash=f"{k:064x}", machine_pk=machine.id,
                 sample_rate=16_000, n_channels=1, duration_s=2.0, n_bytes=64_044)
            for k in range(n)
        ]  # fmt: skip
        session.add_all(clips)
        session.flush()
        return [(c.id, model.id, flag_payload(c, "fan/id_00", model, 40.0 + k, 16.5)) for k, c in enumerate(clips)]


def rows(url: str | None = None) -> list[Notification]:
    with session_scope(url) as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def make_due(url: str | None = None) -> None:
    """Every pending row due now (instead of waiting out the backoff)."""
    with session_scope(url) as session:
        session.execute(update(Notification).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def recording_channel(kind: str = "webhook", target: str = "http://example.invalid/hook"):
    sent: list[tuple[str, dict]] = []
    return Channel(kind, target, lambda where, payload: sent.append((where, payload))), sent


# --- configuration --------------------------------------------------------------------------------------------


def test_no_configuration_means_no_channels():
    assert channels_from() == []
    assert channels_from("", "") == []


def test_channels_from_arguments():
    webhook, sns = channels_from("https://hooks.example.com/flags", TOPIC_ARN)
    assert (webhook.kind, webhook.target) == ("webhook", "https://hooks.example.com/flags")
    assert (sns.kind, sns.target) == ("sns", TOPIC_ARN)


def test_channels_from_environment(monkeypatch):
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:8080/hook")
    monkeypatch.setenv("NOTIFY_SNS_TOPIC_ARN", TOPIC_ARN)
    assert [(c.kind, c.target) for c in channels_from()] == [("webhook", "http://127.0.0.1:8080/hook"),
                                                              ("sns", TOPIC_ARN)]  # fmt: skip
    # arguments win over the environment
    assert [c.target for c in channels_from("https://other.example.com/x")][0] == "https://other.example.com/x"


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "example.com/hook", "file:///etc/passwd", "http://", "https://:8080/x",
            "http://exa mple.com/x", "http://example.com:port/x"],
)  # fmt: skip
def test_bad_webhook_url_is_refused(url):
    with pytest.raises(BadInputError) as caught:
        channels_from(webhook_url=url)
    assert caught.value.reason == "invalid_parameter"


@pytest.mark.parametrize("url", ["https://bot:Zs3cr3t@hooks.example.com/x", "http://Zs3cr3t@127.0.0.1:8080/x"])
def test_a_webhook_url_with_credentials_is_refused_naming_the_option(url):
    with pytest.raises(BadInputError, match="^--webhook must not carry a user name or password") as caught:
        channels_from(webhook_url=url, webhook_option="--webhook")
    assert caught.value.reason == "invalid_parameter" and "Zs3cr3t" not in str(caught.value)
    with pytest.raises(BadInputError, match="^the webhook URL must not carry a user name or password"):
        channels_from(webhook_url=url)


def test_bad_webhook_url_from_environment_is_refused(monkeypatch):
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", "not a url")
    with pytest.raises(BadInputError, match="invalid_parameter"):
        channels_from()


@pytest.mark.parametrize(
    "arn", ["machine-flags", "arn:aws:sns", "arn:aws:sns:eu-west-1:machine-flags", "arn:aws:s3:::my-bucket",
            "arn:aws:sqs:eu-west-1:123456789012:queue", "arn:aws:sns::123456789012:machine-flags",
            "arn:aws:sns:eu-west-1:123456789012:"],
)  # fmt: skip
def test_bad_sns_topic_arn_is_refused(arn, monkeypatch):
    with pytest.raises(BadInputError) as caught:
        channels_from(sns_topic_arn=arn)
    assert caught.value.reason == "invalid_parameter"
    monkeypatch.setenv("NOTIFY_SNS_TOPIC_ARN", arn)
    with pytest.raises(BadInputError):
        channels_from()


@pytest.mark.parametrize("arn", [TOPIC_ARN, "arn:aws-cn:sns:cn-north-1:123456789012:flags.fifo",
                                 "arn:aws-us-gov:sns:us-gov-west-1:123456789012:Flags_2"])  # fmt: skip
def test_good_sns_topic_arns(arn):
    assert [c.kind for c in channels_from(sns_topic_arn=arn)] == ["sns"]


def test_backoff_grows_and_is_capped():
    delays = [backoff_s(n) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[0] == notify.BACKOFF_BASE_S
    assert delays[1] == 2 * notify.BACKOFF_BASE_S
    assert max(delays) == notify.BACKOFF_CAP_S


# --- the outbox -----------------------------------------------------------------------------------------------


def test_payload_names_machine_clip_score_and_threshold():
    ((clip_id, _, payload),) = make_flags(1)
    assert payload["machine"] == "fan/id_00" and payload["clip_id"] == clip_id
    assert payload["score"] == 40.0 and payload["threshold"] == 16.5
    assert payload["model"] == "mahalanobis v1" and payload["path"] == "/drop/fan/id_00/000.wav"
    assert payload["ingested_at"] and "fan/id_00" in payload["subject"]
    json.dumps(payload)  # storable and sendable as it is


def test_payload_links_to_the_clip_on_the_triage_page_when_public_url_is_set(monkeypatch):
    monkeypatch.setenv("PUBLIC_URL", "https://triage.example.com/")
    ((clip_id, _, payload),) = make_flags(1)
    assert payload["link"] == f"https://triage.example.com/triage?machine=fan%2Fid_00&clip={clip_id}"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(payload["link"]).query)
    assert query == {"machine": ["fan/id_00"], "clip": [str(clip_id)]}
    json.dumps(payload)

    monkeypatch.delenv("PUBLIC_URL")  # no address known: no link
    with session_scope() as session:
        clip, model = session.get(Clip, clip_id), session.scalars(select(DetectorModel)).one()
        assert "link" not in flag_payload(clip, "fan/id_00", model, 40.0, 16.5)


def test_enqueue_adds_one_row_per_flag_and_channel_and_never_twice(any_db_url):
    flags = make_flags(3, any_db_url)
    webhook, _ = recording_channel("webhook")
    sns, _ = recording_channel("sns", TOPIC_ARN)
    assert enqueue(flags, [webhook, sns], url=any_db_url) == 6
    assert enqueue(flags, [webhook, sns], url=any_db_url) == 0  # a restarted watcher enqueues the same flags
    assert enqueue(flags[:1], [webhook], url=any_db_url) == 0
    stored = rows(any_db_url)
    assert len(stored) == 6
    assert len({(r.clip_id, r.model_id, r.channel) for r in stored}) == 6
    assert {r.status for r in stored} == {"pending"} and {r.attempts for r in stored} == {0}
    assert {r.target for r in stored if r.channel == "sns"} == {TOPIC_ARN}
    assert stored[0].payload == flags[0][2]


def test_concurrent_enqueues_add_each_row_once(any_db_url):
    """Two watchers (threads here) racing on the same flags: the unique outbox keeps one row each."""
    flags = make_flags(4, any_db_url)
    channel, _ = recording_channel()
    barrier = threading.Barrier(4)
    added: list[int] = []

    def work() -> None:
        barrier.wait()
        added.append(enqueue(flags, [channel], url=any_db_url))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(added) == 4 and len(added) == 4
    assert len(rows(any_db_url)) == 4


def test_enqueue_without_channels_adds_nothing():
    assert enqueue(make_flags(2), []) == 0
    assert rows() == []


# --- delivery by webhook --------------------------------------------------------------------------------------


def test_webhook_delivers_the_json_payload(hook):
    flags = make_flags(2)
    channels = channels_from(webhook_url=hook.url)
    enqueue(flags, channels)
    assert deliver_due(channels) == {"sent": 2, "retrying": 0, "failed": 0}
    assert hook.received == [payload for _, _, payload in flags]
    assert all(h["Content-Type"] == "application/json" for h in hook.headers)
    for row in rows():
        assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
        assert row.sent_at is not None
    assert deliver_due(channels) == {"sent": 0, "retrying": 0, "failed": 0}  # sent once only
    assert len(hook.received) == 2


def test_webhook_failing_twice_then_succeeding_is_sent_on_the_third_attempt(hook, monkeypatch):
    ((clip_id, _, _),) = flags = make_flags(1)
    channels = channels_from(webhook_url=hook.url)
    enqueue(flags, channels)
    hook.statuses = [503, 503]

    assert deliver_due(channels) == {"sent": 0, "retrying": 1, "failed": 0}
    (row,) = rows()
    assert (row.status, row.attempts) == ("pending", 1) and "503" in row.last_error
    assert row.next_attempt_at.replace(tzinfo=None) > utcnow().replace(tzinfo=None)  # backing off
    assert deliver_due(channels) == {"sent": 0, "retrying": 0, "failed": 0}  # not due yet: nothing sent
    assert len(hook.received) == 1

    monkeypatch.setattr(notify, "BACKOFF_BASE_S", 0.0)
    make_due()
    assert deliver_due(channels) == {"sent": 0, "retrying": 1, "failed": 0}
    assert deliver_due(channels) == {"sent": 1, "retrying": 0, "failed": 0}
    (row,) = rows()
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, "")
    assert len(hook.received) == 3
    body = hook.received[-1]
    assert body["machine"] == "fan/id_00" and body["clip_id"] == clip_id
    assert body["score"] == 40.0 and body["threshold"] == 16.5


def test_webhook_that_always_fails_gives_up_after_max_attempts(hook, monkeypatch):
    monkeypatch.setattr(notify, "BACKOFF_BASE_S", 0.0)
    channels = channels_from(webhook_url=hook.url)
    enqueue(make_flags(1), channels)
    hook.statuses = [500] * 50
    outcomes = [deliver_due(channels) for _ in range(notify.MAX_ATTEMPTS + 2)]
    assert [o["retrying"] for o in outcomes] == [1] * (notify.MAX_ATTEMPTS - 1) + [0, 0, 0]
    assert [o["failed"] for o in outcomes] == [0] * (notify.MAX_ATTEMPTS - 1) + [1, 0, 0]
    (row,) = rows()
    assert (row.status, row.attempts) == ("failed", notify.MAX_ATTEMPTS)
    assert row.last_error == "webhook answered HTTP 500"
    assert row.sent_at is None
    assert len(hook.received) == notify.MAX_ATTEMPTS  # never tried again once given up


def test_a_redirect_is_a_failed_attempt_never_followed(hook, monkeypatch):
    """A webhook answering 3xx (here towards another local server, as a redirect to an internal address would)
    is a failed try with its reason, retried with backoff like any other, and its target is never reached."""
    with webhook_server() as internal:
        hook.location = internal.url + "?token=Zs3cr3t"
        hook.statuses = [302, 301, 303, 307, 308]
        channels = channels_from(webhook_url=hook.url)
        enqueue(make_flags(1), channels)
        assert deliver_due(channels) == {"sent": 0, "retrying": 1, "failed": 0}
        (row,) = rows()
        assert row.next_attempt_at.replace(tzinfo=None) > utcnow().replace(tzinfo=None)  # backing off
        shown = notify.redact_url(internal.url)
        assert row.last_error == f"webhook answered HTTP 302, redirected to {shown}: not followed"
        assert (row.status, row.attempts) == ("pending", 1) and "Zs3cr3t" not in row.last_error

        monkeypatch.setattr(notify, "BACKOFF_BASE_S", 0.0)
        for attempt, code in enumerate([301, 303, 307, 308], start=2):
            make_due()
            assert deliver_due(channels) == {"sent": 0, "retrying": 1, "failed": 0}
            (row,) = rows()
            assert (row.status, row.attempts) == ("pending", attempt)
            assert row.last_error == f"webhook answered HTTP {code}, redirected to {shown}: not followed"
        assert internal.hits == []  # never followed, by any method
        hook.location = None
        make_due()
        assert deliver_due(channels) == {"sent": 1, "retrying": 0, "failed": 0}  # the webhook itself, answering 200
        assert internal.hits == [] and len(hook.received) == 6


def test_unreachable_webhook_is_retried_later(monkeypatch):
    with webhook_server() as gone:
        url = gone.url  # a port nobody listens on once the server is closed
    channels = channels_from(webhook_url=url)
    enqueue(make_flags(1), channels)
    assert deliver_due(channels) == {"sent": 0, "retrying": 1, "failed": 0}
    (row,) = rows()
    assert row.status == "pending" and "unreachable" in row.last_error


def test_slow_webhook_times_out_and_is_retried(hook, monkeypatch):
    monkeypatch.setattr(notify, "SEND_TIMEOUT_S", 0.3)
    hook.hold = threading.Event()  # the server sits on the request longer than the timeout
    channels = channels_from(webhook_url=hook.url)
    enqueue(make_flags(1), channels)
    assert deliver_due(channels) == {"sent": 0, "retrying": 1, "failed": 0}
    assert not hook.finished.is_set()  # we gave up while the server still held the request
    (row,) = rows()
    assert row.status == "pending" and row.attempts == 1 and "timed out" in row.last_error


def test_webhook_answering_garbage_is_a_failed_attempt_not_a_crash(hook, monkeypatch):
    """A reply that is not HTTP must count as a failed try: it must neither escape deliver_due (the
    dispatcher would retry the row forever without counting) nor hold up the rows after it."""
    monkeypatch.setattr(notify, "BACKOFF_BASE_S", 0.0)
    flags = make_flags(2)
    channels = channels_from(webhook_url=hook.url)
    enqueue(flags[:1], channels)
    good, sent = recording_channel("sns", TOPIC_ARN)  # a later row, for a channel that works
    enqueue(flags[1:], [good])
    hook.garbage = True
    assert deliver_due([*channels, good]) == {"sent": 1, "retrying": 1, "failed": 0}
    webhook_row, sns_row = rows()
    assert (webhook_row.status, webhook_row.attempts) == ("pending", 1) and webhook_row.last_error
    assert sns_row.status == "sent" and len(sent) == 1


def test_rows_of_channels_not_configured_here_do_not_starve_the_others(monkeypatch):
    """Pending SNS rows left by an earlier run (SNS no longer configured) must not hold up webhook rows."""
    flags = make_flags(5)
    sns, _ = recording_channel("sns", TOPIC_ARN)
    enqueue(flags[:4], [sns])
    webhook, sent = recording_channel("webhook")
    enqueue(flags[4:], [webhook])
    assert deliver_due([webhook], limit=3) == {"sent": 1, "retrying": 0, "failed": 0}
    assert [payload["clip_id"] for _, payload in sent] == [flags[4][0]]
    assert [r.status for r in rows()] == ["pending"] * 4 + ["sent"]


def test_a_webhook_row_stores_scheme_host_and_a_fingerprint_never_the_url(hook):
    """The row names its webhook by scheme, host and the first 16 hex digits of the URL's SHA-256; the process
    started with that URL sends it there."""
    channels = channels_from(webhook_url=hook.url)
    enqueue(make_flags(1), channels)
    origin = hook.url.removesuffix("/hooks/flags")
    assert rows()[0].target == f"{origin} sha256:{hashlib.sha256(hook.url.encode()).hexdigest()[:16]}"
    assert deliver_due(channels)["sent"] == 1
    assert len(hook.received) == 1 and hook.hits == [("POST", "/hooks/flags")]


def test_a_row_for_a_url_this_process_was_not_started_with_stays_pending_and_says_why(hook, monkeypatch):
    """A process started with another webhook URL (another token on the same host, say) neither sends the row
    nor loses it, nor lets it hold up its own rows; a process started with the row's URL sends it."""
    other = Channel("webhook", hook.url.replace("/hooks/flags", "/hooks/other"), notify.post_webhook)
    flags = make_flags(6)
    enqueue(flags[:5], [other])
    mine = channels_from(webhook_url=hook.url)
    enqueue(flags[5:], mine)
    assert deliver_due(mine, limit=3) == {"sent": 1, "retrying": 0, "failed": 0}  # not held up by the 5 before
    assert deliver_due(mine, limit=3) == {"sent": 0, "retrying": 0, "failed": 0}
    assert [b["clip_id"] for b in hook.received] == [flags[5][0]]
    origin = hook.url.removesuffix("/hooks/flags")
    waiting = rows()[:5]
    assert {(r.status, r.attempts) for r in waiting} == {("pending", 0)}
    assert {r.last_error for r in waiting} == {f"webhook {origin}: this process was not started with that URL"}
    assert "/hooks" not in waiting[0].last_error

    assert deliver_due([], limit=10) == {"sent": 0, "retrying": 0, "failed": 0}
    sns, _ = recording_channel("sns", TOPIC_ARN)  # a process without a webhook leaves webhook rows alone
    assert deliver_due([sns]) == {"sent": 0, "retrying": 0, "failed": 0}
    assert deliver_due([other]) == {"sent": 5, "retrying": 0, "failed": 0}  # the process with their URL
    assert [(r.status, r.last_error) for r in rows()] == [("sent", "")] * 6
    assert sorted(hits for hits in hook.hits) == [("POST", "/hooks/flags")] + [("POST", "/hooks/other")] * 5


def test_webhook_reference_is_scheme_host_and_fingerprint():
    fingerprint = hashlib.sha256(SECRET_HOOK.encode()).hexdigest()[:16]
    assert notify.webhook_reference(SECRET_HOOK) == f"https://hooks.slack.com sha256:{fingerprint}"
    assert notify.webhook_reference("http://[::1]:9000/x") == (
        f"http://[::1]:9000 sha256:{hashlib.sha256(b'http://[::1]:9000/x').hexdigest()[:16]}")  # fmt: skip
    assert notify.unknown_webhook_error(notify.webhook_reference(SECRET_HOOK)) == (
        "webhook https://hooks.slack.com: this process was not started with that URL")  # fmt: skip


# --- delivery by SNS (moto) -----------------------------------------------------------------------------------


@pytest.fixture
def aws(fake_aws):
    """moto's AWS with fake credentials and no AWS settings from this machine; yields (sns, sqs) clients."""
    with mock_aws():
        yield boto3.client("sns", region_name="eu-west-1"), boto3.client("sqs", region_name="eu-west-1")


def _subscribed_queue(sns, sqs, topic_arn: str) -> str:
    queue_url = sqs.create_queue(QueueName="flags")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return queue_url


def test_sns_publishes_each_flag(aws):
    sns, sqs = aws
    topic_arn = sns.create_topic(Name="machine-flags")["TopicArn"]
    queue_url = _subscribed_queue(sns, sqs, topic_arn)
    flags = make_flags(2)
    channels = channels_from(sns_topic_arn=topic_arn)  # its own boto3 client, region from the ARN
    assert enqueue(flags, channels) == 2
    assert deliver_due(channels) == {"sent": 2, "retrying": 0, "failed": 0}
    assert [(r.status, r.attempts, r.channel) for r in rows()] == [("sent", 1, "sns")] * 2

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    envelopes = [json.loads(m["Body"]) for m in messages]
    assert sorted(json.loads(e["Message"])["clip_id"] for e in envelopes) == sorted(f[0] for f in flags)
    assert {e["Subject"] for e in envelopes} == {"Anomaly flagged on fan/id_00"}
    body = json.loads(envelopes[0]["Message"])
    assert {"machine", "clip_id", "score", "threshold"} <= set(body)


def test_sns_through_the_environment_and_a_given_client(aws, monkeypatch):
    sns, sqs = aws
    topic_arn = sns.create_topic(Name="machine-flags")["TopicArn"]
    queue_url = _subscribed_queue(sns, sqs, topic_arn)
    monkeypatch.setenv("NOTIFY_SNS_TOPIC_ARN", topic_arn)
    channels = channels_from(sns_client=sns)
    enqueue(make_flags(1), channels)
    assert deliver_due(channels)["sent"] == 1
    assert len(sqs.receive_message(QueueUrl=queue_url)["Messages"]) == 1


def test_sns_to_a_missing_topic_is_retried(aws):
    channels = channels_from(sns_topic_arn=TOPIC_ARN)  # never created
    enqueue(make_flags(1), channels)
    assert deliver_due(channels) == {"sent": 0, "retrying": 1, "failed": 0}
    (row,) = rows()
    assert row.status == "pending" and row.last_error.startswith("SNS publish failed")


# --- the dispatcher thread ------------------------------------------------------------------------------------


def _dispatchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "notification-dispatcher"]


def test_dispatcher_delivers_in_the_background_and_stops(hook):
    channels = channels_from(webhook_url=hook.url)
    dispatcher = Dispatcher(channels, interval_s=0.05).start()
    try:
        assert len(_dispatchers()) == 1
        enqueue(make_flags(3), channels)  # enqueued after the start: picked up on a later pass
        assert wait_for(lambda: [r.status for r in rows()] == ["sent"] * 3)
    finally:
        dispatcher.stop()
    assert _dispatchers() == []
    assert len(hook.received) == 3


def test_dispatcher_without_channels_starts_no_thread():
    dispatcher = Dispatcher([]).start()
    assert _dispatchers() == []
    dispatcher.stop()


def test_dispatcher_survives_a_failing_pass(hook, monkeypatch):
    """A database hiccup in one pass is logged; the thread goes on and delivers on the next."""
    channels = channels_from(webhook_url=hook.url)
    enqueue(make_flags(1), channels)
    real, calls = notify.deliver_due, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(notify, "deliver_due", flaky)
    dispatcher = Dispatcher(channels, interval_s=0.05).start()
    try:
        assert wait_for(lambda: rows()[0].status == "sent")
    finally:
        dispatcher.stop()
    assert len(calls) >= 2


def test_stop_does_not_wait_for_a_send_in_flight(hook, monkeypatch):
    monkeypatch.setattr(notify, "SEND_TIMEOUT_S", 5.0)
    hook.hold = threading.Event()
    channels = channels_from(webhook_url=hook.url)
    enqueue(make_flags(1), channels)
    dispatcher = Dispatcher(channels, interval_s=0.05).start()
    assert hook.started.wait(10)
    dispatcher.stop(timeout_s=0.1)  # returns even though a send is still in flight
    hook.hold.set()
    assert wait_for(lambda: rows()[0].status == "sent")  # the in-flight send completes and is recorded
    assert wait_for(lambda: _dispatchers() == [])


def test_stop_with_flush_sends_what_became_due_after_the_last_pass(hook):
    channels = channels_from(webhook_url=hook.url)
    dispatcher = Dispatcher(channels, interval_s=60).start()  # one pass at the start, then a long sleep
    time.sleep(0.2)  # that first pass (on an empty outbox) is over
    enqueue(make_flags(2), channels)
    dispatcher.stop(flush_s=10)
    assert [r.status for r in rows()] == ["sent", "sent"]
    assert _dispatchers() == []


def test_deliver_due_stops_sending_at_its_deadline(hook):
    channels = channels_from(webhook_url=hook.url)
    enqueue(make_flags(3), channels)
    assert deliver_due(channels, until=time.monotonic() - 1) == {"sent": 0, "retrying": 0, "failed": 0}
    assert [r.status for r in rows()] == ["pending"] * 3 and hook.received == []
    assert deliver_due(channels, until=time.monotonic() + 30)["sent"] == 3


# --- several dispatchers sharing one outbox --------------------------------------------------------------------


def test_two_dispatchers_delivering_at_once_send_each_row_exactly_once(any_db_url, hook):
    """Two watchers (or a cron ``--once`` beside a running one) deliver from the same outbox at the same
    moment: each row is claimed before it is sent, so the receiver gets every flag exactly once."""
    flags = make_flags(30, any_db_url)
    channels = channels_from(webhook_url=hook.url)
    assert enqueue(flags, channels, url=any_db_url) == 30
    barrier = threading.Barrier(2)
    outcomes: list[dict[str, int]] = []

    def work() -> None:
        barrier.wait()
        outcomes.append(deliver_due(channels, url=any_db_url))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(outcomes) == 2 and sum(o["sent"] for o in outcomes) == 30
    assert sorted(body["clip_id"] for body in hook.received) == sorted(clip_id for clip_id, _, _ in flags)
    assert [(r.status, r.attempts) for r in rows(any_db_url)] == [("sent", 1)] * 30


def test_two_dispatcher_threads_never_send_a_row_twice(hook):
    channels = channels_from(webhook_url=hook.url)
    flags = make_flags(20)
    enqueue(flags, channels)
    dispatchers = [Dispatcher(channels, interval_s=0.01), Dispatcher(channels, interval_s=0.01)]
    for dispatcher in dispatchers:
        dispatcher.start()
    try:
        assert wait_for(lambda: [r.status for r in rows()] == ["sent"] * 20)
        time.sleep(0.2)  # a few more passes of both: nothing is sent again
    finally:
        for dispatcher in dispatchers:
            dispatcher.stop()
    assert sorted(body["clip_id"] for body in hook.received) == sorted(clip_id for clip_id, _, _ in flags)


def test_a_row_claimed_by_another_dispatcher_waits_for_its_lease(hook):
    """A row another dispatcher claimed is left to it; should that one die before sending, the row is due again
    once the lease has passed."""
    from db.queries import claim_notification

    channels = channels_from(webhook_url=hook.url)
    enqueue(make_flags(2), channels)
    first, second = rows()
    now = utcnow()
    with session_scope() as session:  # the other dispatcher's claim
        claimed = claim_notification(session, first.id, now, now + timedelta(seconds=notify.CLAIM_LEASE_S))
        assert claimed is not None and claimed.id == first.id
        assert claim_notification(session, first.id, now, now + timedelta(seconds=1)) is None  # taken already
    assert deliver_due(channels) == {"sent": 1, "retrying": 0, "failed": 0}
    assert [b["clip_id"] for b in hook.received] == [second.clip_id]
    assert [r.status for r in rows()] == ["pending", "sent"]

    make_due()  # the lease has run out: its claimer died
    assert deliver_due(channels) == {"sent": 1, "retrying": 0, "failed": 0}
    assert [b["clip_id"] for b in hook.received] == [second.clip_id, first.clip_id]


# --- webhook URLs are secrets ---------------------------------------------------------------------------------

SECRET_HOOK = "https://hooks.slack.com/services/T0001/B0002/Zs3cr3tT0k3n?key=hush"


@pytest.mark.parametrize(
    ("url", "shown"),
    [(SECRET_HOOK, "https://hooks.slack.com/…"), ("http://user:pw@127.0.0.1:8080/x", "http://127.0.0.1:8080/…"),
     ("http://[::1]:9000/hook", "http://[::1]:9000/…"), ("https://example.com", "https://example.com/…"),
     ("example.com/services/Zs3cr3t", "example.com/…"), ("user:pw@example.com/x", "example.com/…"),
     ("http://example.com:port/Zs3cr3t", "http://example.com:port/…")],
)  # fmt: skip
def test_redact_url_keeps_scheme_and_host_only(url, shown):
    assert notify.redact_url(url) == shown


def test_a_webhook_channel_describes_itself_without_its_secret():
    (webhook, sns) = channels_from(SECRET_HOOK, TOPIC_ARN)
    assert webhook.describe() == "webhook https://hooks.slack.com/…"
    assert sns.describe() == f"sns {TOPIC_ARN}"
    assert "Zs3cr3t" not in repr(webhook)


def test_a_bad_webhook_url_is_refused_without_echoing_its_secret():
    with pytest.raises(BadInputError) as caught:
        channels_from(webhook_url="hooks.slack.com/services/T0001/B0002/Zs3cr3tT0k3n")
    assert caught.value.reason == "invalid_parameter" and "Zs3cr3t" not in str(caught.value)


def test_webhook_errors_and_logs_never_hold_the_url(caplog):
    """A send error that quotes the URL (here http.client refusing a blank in its path) is stored and logged
    with the scheme and host only."""
    url = "http://127.0.0.1:9/services/Zs3cr3t T0k3n?key=hush"  # stored by an earlier run, say
    with pytest.raises(notify.DeliveryError) as caught:
        notify.post_webhook(url, {"subject": "x"})
    assert "Zs3cr3t" not in str(caught.value) and "hush" not in str(caught.value)

    def leaky(target: str, payload: dict) -> None:
        raise RuntimeError(f"cannot reach {target} (path {target.split('9', 1)[1]})")

    enqueue(make_flags(1), [Channel("webhook", url, leaky)])
    with caplog.at_level("WARNING", logger="core.workflows.notify"):
        assert deliver_due([Channel("webhook", url, leaky)]) == {"sent": 0, "retrying": 1, "failed": 0}
    (row,) = rows()
    assert "127.0.0.1" in row.last_error and "Zs3cr3t" not in row.last_error and "hush" not in row.last_error
    assert "127.0.0.1" in caplog.text and "Zs3cr3t" not in caplog.text and "hush" not in caplog.text
