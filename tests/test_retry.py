"""The retry policy: transient faults only, bounded in attempts and time."""

from __future__ import annotations

import time

import pytest

from dataplane.errors import BackendUnavailableError, NotFoundError, TransientError
from dataplane.retry import RetryPolicy, call_with_retry

FAST = RetryPolicy(attempts=4, deadline_s=5, initial_wait_s=0.01, max_wait_s=0.02)


def flaky(failures: int, error: Exception) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "ok"

    return calls, fn


def test_transient_faults_are_retried_until_success() -> None:
    calls, fn = flaky(2, TransientError("503"))
    assert call_with_retry(fn, FAST, "get x") == "ok"  # type: ignore[arg-type]
    assert len(calls) == 3


def test_gives_up_after_the_attempts_with_a_clear_error() -> None:
    calls, fn = flaky(99, TransientError("503 SlowDown"))
    with pytest.raises(BackendUnavailableError) as info:
        call_with_retry(fn, FAST, "get s3://b/k")  # type: ignore[arg-type]
    assert len(calls) == 4
    assert "get s3://b/k" in str(info.value)
    assert "4 attempt(s)" in str(info.value)
    assert "503 SlowDown" in str(info.value)


def test_deadline_bounds_the_time() -> None:
    policy = RetryPolicy(attempts=1000, deadline_s=0.3, initial_wait_s=0.05, max_wait_s=0.05)
    calls, fn = flaky(10_000, TransientError("reset"))
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError):
        call_with_retry(fn, policy, "put x")  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.0
    assert 2 <= len(calls) < 1000


def test_permanent_errors_surface_at_once() -> None:
    calls, fn = flaky(99, NotFoundError("missing"))
    with pytest.raises(NotFoundError):
        call_with_retry(fn, FAST, "get x")  # type: ignore[arg-type]
    assert len(calls) == 1


def test_single_attempt_policy_still_names_the_operation() -> None:
    calls, fn = flaky(99, TransientError("timeout"))
    with pytest.raises(BackendUnavailableError, match="1 attempt"):
        call_with_retry(fn, RetryPolicy(attempts=1), "stat y")  # type: ignore[arg-type]
    assert len(calls) == 1


def test_policy_validates_itself() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(deadline_s=0)
