"""The in-process limits storage starts no thread from the request path.

``limits``' own memory storage starts a new timer thread (a ``threading.Timer``) from a hit
whenever the last one has finished, i.e. up to every 10 ms under load; starting a thread waits
until it runs, which on a busy host held the server's event loop for milliseconds per request.
``SweptMemoryStorage`` sweeps from one daemon thread instead."""

from __future__ import annotations

import threading
import time

import pytest

from datacloud.lookup.limits import LookupLimiter, LookupLimits


def test_admitting_requests_starts_at_most_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = LookupLimiter(LookupLimits())
    started: list[str] = []
    real = threading.Thread.start

    def counted(self: threading.Thread) -> None:
        started.append(type(self).__name__)
        real(self)

    monkeypatch.setattr(threading.Thread, "start", counted)
    for i in range(30):
        assert limiter.admit(f"key{i % 3}", "clerk") is None
        time.sleep(0.02)  # longer than the library's 10 ms timer: each hit would start one
    assert len(started) <= 1, started


def test_expired_hits_are_still_forgotten() -> None:
    """Expiry is decided when a counter is read: the sweep only frees memory."""
    from limits import RateLimitItemPerSecond
    from limits.strategies import MovingWindowRateLimiter

    from datacloud.lookup.limits import SweptMemoryStorage

    assert isinstance(LookupLimiter(LookupLimits()).storage, SweptMemoryStorage)

    counter = MovingWindowRateLimiter(SweptMemoryStorage())
    item = RateLimitItemPerSecond(2, 1)
    assert counter.hit(item, "k") and counter.hit(item, "k")
    assert not counter.hit(item, "k")
    for _ in range(40):  # the window passes (bounded: ~2 s)
        if counter.test(item, "k"):
            break
        time.sleep(0.05)
    assert counter.hit(item, "k")
