"""core.supervised.cloud.retry: exponential backoff with full jitter while AWS throttles, and only then."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from core.supervised.cloud import retry
from core.supervised.cloud.retry import is_throttling, with_backoff


def client_error(code: str, operation: str = "DetectCustomLabels") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, operation)


class Flaky:
    """A call that raises ``errors`` in turn, then returns ``result``; counts its calls."""

    def __init__(self, errors: list[Exception], result: str = "ok"):
        self.errors, self.result, self.calls = list(errors), result, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def highest_jitter(monkeypatch):
    """``random.uniform`` as used by the backoff, pinned to its upper bound (so delays are the caps)."""
    bounds = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    monkeypatch.setattr(retry.random, "uniform", uniform)
    return bounds


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_throttling_is_retried_until_the_call_succeeds(code, sleeps):
    call = Flaky([client_error(code), client_error(code)], result="labels")
    assert with_backoff(call, sleep=sleeps.append) == "labels"
    assert call.calls == 3
    assert len(sleeps) == 2


def test_delays_grow_exponentially_and_stay_under_the_cap(sleeps, highest_jitter):
    call = Flaky([client_error("ThrottlingException")] * 6)
    retried = []
    result = with_backoff(call, attempts=7, base_s=0.5, cap_s=5.0, sleep=sleeps.append,
                          on_retry=lambda n, d: retried.append((n, d)))  # fmt: skip
    assert result == "ok" and call.calls == 7
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert all(low == 0.0 for low, _ in highest_jitter)  # full jitter: anywhere from no wait up to the cap
    assert retried == list(enumerate(sleeps, start=1))


def test_real_jitter_stays_between_zero_and_the_growing_cap(sleeps):
    call = Flaky([client_error("ThrottlingException")] * 9)
    with_backoff(call, attempts=10, base_s=0.25, cap_s=3.0, sleep=sleeps.append)
    assert len(sleeps) == 9
    for attempt, delay in enumerate(sleeps):
        assert 0.0 <= delay <= min(3.0, 0.25 * 2**attempt)


def test_gives_up_after_attempts_and_reraises_the_last_error(sleeps):
    errors = [client_error("ThrottlingException") for _ in range(5)]
    call = Flaky(errors)
    with pytest.raises(ClientError) as caught:
        with_backoff(call, attempts=3, sleep=sleeps.append)
    assert call.calls == 3
    assert len(sleeps) == 2  # no pointless sleep after the last try
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"


@pytest.mark.parametrize(
    "error",
    [client_error("AccessDeniedException"), client_error("InvalidS3ObjectException"), KeyError("x"), ValueError()],
)
def test_other_errors_are_not_retried(error, sleeps):
    call = Flaky([error])
    with pytest.raises(type(error)):
        with_backoff(call, sleep=sleeps.append)
    assert call.calls == 1
    assert sleeps == []


def test_a_single_attempt_never_sleeps(sleeps):
    call = Flaky([client_error("ThrottlingException")])
    with pytest.raises(ClientError):
        with_backoff(call, attempts=1, sleep=sleeps.append)
    assert (call.calls, sleeps) == (1, [])


def test_is_throttling_reads_the_error_code():
    assert is_throttling(client_error("ThrottlingException"))
    assert is_throttling(client_error("SlowDown", "PutObject"))
    assert not is_throttling(client_error("ResourceNotFoundException"))
    assert not is_throttling(RuntimeError("no response attribute"))
