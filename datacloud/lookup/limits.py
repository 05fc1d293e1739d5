"""Request limits of the lookup API: per-key rates and daily quotas by role, the not-found alert,
the lockout after failed keys, and the body-size cap.

A clerk could otherwise recover a full ID number from a masked one by trying the hidden
birth-date digits: a few hundred to a few thousand lookups. ``LookupLimits`` is the typed
configuration (the ``limits:`` section of the API keys YAML, every field optional, defaults
below); ``LookupLimiter`` keeps the counters in a ``limits`` storage: ``memory://`` for one
server process, ``redis://host:6379/0`` when several workers must share them.

No counter holds personal data: keys are counted by ``Principal.key_id`` (a prefix of the key's
SHA-256, which the keys file holds anyway), failed keys by client address.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Literal

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import STRATEGIES, FixedWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _limit(text: str) -> RateLimitItem:
    try:
        return parse(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a rate such as '30/minute', '2000/day' or '100 per hour'"
        ) from None


class RoleLimits(BaseModel):
    """One role's per-key limits, in the ``limits`` notation (``30/minute``, ``2000/day``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rate: str = Field(default="30/minute", description="requests per key in a moving window")
    quota: str = Field(
        default="2000/day", description="requests per key per day (rolling 24 hours)"
    )

    @field_validator("rate", "quota")
    @classmethod
    def _parses(cls, value: str) -> str:
        _limit(value)
        return value


# every role of datacloud.lookup.auth.ROLES (a unit test holds the two together)
DEFAULT_ROLE_LIMITS: dict[str, RoleLimits] = {
    "clerk": RoleLimits(rate="30/minute", quota="2000/day"),
    "auditor": RoleLimits(rate="60/minute", quota="5000/day"),
    # the citizen portal (one person's own data tracker) and providing departments' uploads
    "citizen": RoleLimits(rate="10/minute", quota="200/day"),
    "department": RoleLimits(rate="30/minute", quota="2000/day"),
}


class NotFoundAlert(BaseModel):
    """Alert when one key's not-found answers reach ``count`` within ``per_seconds``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    count: int = Field(default=20, ge=1)
    per_seconds: int = Field(default=60, ge=1)


class Lockout(BaseModel):
    """``failures`` requests with a missing or unknown key from one client address within
    ``window_seconds`` lock that address out (429) for ``lockout_seconds``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    failures: int = Field(default=10, ge=1)
    window_seconds: int = Field(default=300, ge=1)
    lockout_seconds: int = Field(default=900, ge=1)


Strategy = Literal["moving-window", "fixed-window", "sliding-window-counter"]


class LookupLimits(BaseModel):
    """The ``limits:`` section of the API keys YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    storage_uri: str = Field(
        default="memory://",
        description="limits storage: memory:// (one process) or redis://host:port/db",
    )
    strategy: Strategy = "moving-window"
    roles: dict[str, RoleLimits] = Field(default_factory=lambda: dict(DEFAULT_ROLE_LIMITS))
    not_found_alert: NotFoundAlert = Field(default_factory=lambda: NotFoundAlert())
    lockout: Lockout = Field(default_factory=lambda: Lockout())
    max_body_bytes: int = Field(default=16384, ge=1024, le=1 << 20)

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: dict[str, RoleLimits]) -> dict[str, RoleLimits]:
        unknown = sorted(set(roles) - set(DEFAULT_ROLE_LIMITS))
        if unknown:
            raise ValueError(
                f"limits for unknown role(s) {', '.join(unknown)}; "
                f"roles are {', '.join(DEFAULT_ROLE_LIMITS)}"
            )
        return {**DEFAULT_ROLE_LIMITS, **roles}  # a role left out keeps its default

    @model_validator(mode="after")
    def _storage(self) -> LookupLimits:
        scheme = self.storage_uri.split("://", 1)[0]
        if scheme not in {"memory", "redis", "rediss", "redis+sentinel", "redis+cluster"}:
            raise ValueError(
                f"storage_uri {self.storage_uri.split('@')[-1]!r}: use memory:// or redis://…"
            )
        return self


SWEEP_SECONDS = 0.5


class SweptMemoryStorage(MemoryStorage):
    """``memory://`` as the ``limits`` library keeps it (counters of this process), except that
    expired entries are swept by one daemon thread every ``SWEEP_SECONDS`` instead of by a new
    timer thread that the library starts from the request path every 10 ms: starting a thread
    waits until it runs, and on a busy 2-core host that held the server's event loop for
    milliseconds per request (docs/lookup.md#measured). Expiry itself is checked when a counter
    is read, so the sweep only frees memory."""

    _sweeper: threading.Thread | None = None
    _sweeper_lock = threading.Lock()

    def _MemoryStorage__schedule_expiry(self) -> None:  # the library's private hook
        if self._sweeper is not None:
            return
        with self._sweeper_lock:
            if self._sweeper is None:
                ref = weakref.ref(self)
                self._sweeper = threading.Thread(
                    target=_sweep, args=(ref,), name="limits-sweep", daemon=True
                )
                self._sweeper.start()


def _sweep(ref: weakref.ref[SweptMemoryStorage]) -> None:
    while True:  # until the storage is gone (bounded by its life)
        time.sleep(SWEEP_SECONDS)
        storage = ref()
        if storage is None:
            return
        storage._MemoryStorage__expire_events()  # type: ignore[attr-defined]
        del storage


def _storage(uri: str) -> Storage:
    if uri.startswith("memory://"):
        return SweptMemoryStorage()
    storage = storage_from_string(uri)
    assert isinstance(storage, Storage)  # a synchronous storage: the URIs LookupLimits admits
    return storage


@dataclass(frozen=True)
class Refusal:
    """A request refused by a limit: ``rule`` (``RATE_LIMITED``, ``QUOTA_EXCEEDED``,
    ``LOCKED_OUT``), the limit in words, seconds until it lifts, and whether it is the first
    refusal of its kind for this key or address in a while (then it is audited)."""

    rule: str
    limit: str
    retry_after: int
    first: bool


class LookupLimiter:
    """The counters behind ``LookupLimits`` (thread-safe; shared by workers through Redis)."""

    def __init__(self, config: LookupLimits) -> None:
        self.config = config
        self.storage = _storage(config.storage_uri)
        self.counter = STRATEGIES[config.strategy](self.storage)
        self.marker = FixedWindowRateLimiter(self.storage)  # "once per period" flags
        self._rate = {role: _limit(r.rate) for role, r in config.roles.items()}
        self._quota = {role: _limit(r.quota) for role, r in config.roles.items()}
        lock, alert = config.lockout, config.not_found_alert
        self._failures = RateLimitItemPerSecond(lock.failures, lock.window_seconds)
        self._locked = RateLimitItemPerSecond(1, lock.lockout_seconds)
        self._not_found = RateLimitItemPerSecond(alert.count, alert.per_seconds)
        self._alerted = RateLimitItemPerSecond(1, alert.per_seconds)
        self._noted = RateLimitItemPerSecond(1, 60)

    @staticmethod
    def _wait(reset_time: float) -> int:
        return max(1, math.ceil(reset_time - time.time()))

    # --- failed keys, by client address ---------------------------------------------------------

    def locked_out(self, client: str) -> Refusal | None:
        """The refusal while ``client`` is locked out, else None."""
        if self.marker.test(self._locked, "dc-lockout", client):
            return None
        stats = self.marker.get_window_stats(self._locked, "dc-lockout", client)
        return Refusal("LOCKED_OUT", self.describe_lockout(), self._wait(stats.reset_time), False)

    def failed_key(self, client: str) -> bool:
        """Count one request with a missing or unknown key; True when it starts a lockout."""
        self.counter.hit(self._failures, "dc-bad-key", client)
        stats = self.counter.get_window_stats(self._failures, "dc-bad-key", client)
        if stats.remaining > 0:
            return False
        return self.marker.hit(self._locked, "dc-lockout", client)

    def describe_lockout(self) -> str:
        lock = self.config.lockout
        return (
            f"{lock.failures} failed keys in {lock.window_seconds} s: "
            f"locked out for {lock.lockout_seconds} s"
        )

    # --- per key ----------------------------------------------------------------------------------

    def admit(self, key_id: str, role: str) -> Refusal | None:
        """Count one request of the key; the refusal when its rate or daily quota is spent."""
        rate, quota = self._rate[role], self._quota[role]
        if not self.counter.test(quota, "dc-quota", key_id):
            return self._refusal("QUOTA_EXCEEDED", quota, "dc-quota", key_id)
        if not self.counter.hit(rate, "dc-rate", key_id):
            return self._refusal("RATE_LIMITED", rate, "dc-rate", key_id)
        if not self.counter.hit(quota, "dc-quota", key_id):  # another worker took the last one
            return self._refusal("QUOTA_EXCEEDED", quota, "dc-quota", key_id)
        return None

    def _refusal(self, rule: str, item: RateLimitItem, name: str, key_id: str) -> Refusal:
        stats = self.counter.get_window_stats(item, name, key_id)
        first = self.marker.hit(self._noted, "dc-noted", rule, key_id)
        return Refusal(rule, str(item), self._wait(stats.reset_time), first)

    def not_found(self, key_id: str) -> bool:
        """Count one not-found answer of the key; True once per window when they reach the
        alert's count."""
        self.counter.hit(self._not_found, "dc-not-found", key_id)
        stats = self.counter.get_window_stats(self._not_found, "dc-not-found", key_id)
        if stats.remaining > 0:
            return False
        return self.marker.hit(self._alerted, "dc-alerted", key_id)
