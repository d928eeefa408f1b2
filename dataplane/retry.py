"""Bounded retries of transient backend faults, built on tenacity.

Only :class:`~dataplane.errors.TransientError` is retried; every other error surfaces at
once. A policy is bounded both in attempts and in wall time; when either runs out the last
fault is re-raised as :class:`~dataplane.errors.BackendUnavailableError`, naming what was
tried, how often and for how long.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from .errors import BackendUnavailableError, TransientError

__all__ = ["RetryPolicy", "call_with_retry"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient fault.

    ``attempts`` counts the first try. ``deadline_s`` bounds the time from the first try
    to the start of the last one. Waits grow exponentially from ``initial_wait_s`` up to
    ``max_wait_s``, with jitter so many clients do not retry in lockstep.
    """

    attempts: int = 4
    deadline_s: float = 20.0
    initial_wait_s: float = 0.2
    max_wait_s: float = 4.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retry attempts must be at least 1")
        if self.deadline_s <= 0 or self.initial_wait_s < 0 or self.max_wait_s < 0:
            raise ValueError("retry times must be positive")


NO_RETRY = RetryPolicy(attempts=1)


def call_with_retry(fn: Callable[[], T], policy: RetryPolicy, what: str) -> T:
    """Call ``fn`` until it succeeds, raises a non-transient error, or the policy gives up.

    ``what`` names the operation in the final error, e.g. ``"get s3://bucket/key"``. The
    first attempt runs directly (the common case costs no retry machinery); only after a
    transient fault does tenacity take over for the remaining attempts and time.
    """
    started = time.monotonic()
    try:
        return fn()
    except TransientError as first:
        if policy.attempts == 1:
            raise _gave_up(what, 1, started, first) from first
    time.sleep(policy.initial_wait_s)  # the first backoff; tenacity spaces the rest
    retrying = Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(policy.attempts - 1)
        | stop_after_delay(max(policy.deadline_s - (time.monotonic() - started), 0.0)),
        wait=wait_exponential_jitter(
            initial=policy.initial_wait_s, max=policy.max_wait_s, jitter=policy.initial_wait_s
        ),
        reraise=False,
    )
    try:
        return retrying(fn)
    except RetryError as gave_up:
        last = gave_up.last_attempt.exception()
        attempts = gave_up.last_attempt.attempt_number + 1
        raise _gave_up(what, attempts, started, last) from last


def _gave_up(what: str, attempts: int, started: float, last: BaseException | None
             ) -> BackendUnavailableError:
    elapsed = time.monotonic() - started
    return BackendUnavailableError(
        f"{what}: still failing after {attempts} attempt(s) over {elapsed:.1f} s: {last}"
    )
