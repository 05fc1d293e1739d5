"""The lookup API's limits: configuration in the keys YAML, and the counters (memory storage)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datacloud.lookup.auth import ROLES, ApiKeys, KeysFileError, hash_key, key_hint
from datacloud.lookup.limits import (
    DEFAULT_ROLE_LIMITS,
    Lockout,
    LookupLimiter,
    LookupLimits,
    NotFoundAlert,
    RoleLimits,
)


def _keys_file(tmp_path: Path, limits: dict | None) -> Path:
    doc: dict = {"keys": [{"holder": "窗口", "role": "clerk", "sha256": hash_key("k" * 30)}]}
    if limits is not None:
        doc["limits"] = limits
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_defaults_cover_every_role_and_are_sane() -> None:
    assert set(DEFAULT_ROLE_LIMITS) == set(ROLES)
    limits = LookupLimits()
    assert limits.roles["clerk"] == RoleLimits(rate="30/minute", quota="2000/day")
    assert (limits.not_found_alert.count, limits.not_found_alert.per_seconds) == (20, 60)
    assert (limits.lockout.failures, limits.lockout.window_seconds) == (10, 300)
    assert limits.lockout.lockout_seconds == 900 and limits.max_body_bytes == 16384


def test_keys_file_without_limits_gets_the_defaults(tmp_path: Path) -> None:
    assert ApiKeys.from_file(_keys_file(tmp_path, None)).limits == LookupLimits()


def test_keys_file_limits_section(tmp_path: Path) -> None:
    path = _keys_file(
        tmp_path,
        {
            "storage_uri": "redis://127.0.0.1:6379/3",
            "roles": {"clerk": {"rate": "10 per minute", "quota": "500/day"}},
            "lockout": {"failures": 5},
            "max_body_bytes": 8192,
        },
    )
    limits = ApiKeys.from_file(path).limits
    assert limits.roles["clerk"] == RoleLimits(rate="10 per minute", quota="500/day")
    assert limits.roles["auditor"] == DEFAULT_ROLE_LIMITS["auditor"]  # left out: default
    assert limits.lockout == Lockout(failures=5)
    assert limits.storage_uri.startswith("redis://") and limits.max_body_bytes == 8192


@pytest.mark.parametrize(
    ("limits", "named"),
    [
        ({"roles": {"admin": {"rate": "1/minute"}}}, "admin"),
        ({"roles": {"clerk": {"rate": "lots"}}}, "lots"),
        ({"storage_uri": "mysql://db/0"}, "storage_uri"),
        ({"lockout": {"failures": 0}}, "failures"),
        ({"max_body_bytes": 10}, "max_body_bytes"),
        ({"rate": "1/minute"}, "rate"),  # not a field of the section
    ],
)
def test_a_bad_limits_section_stops_the_server_naming_it(
    tmp_path: Path, limits: dict, named: str
) -> None:
    with pytest.raises(KeysFileError, match=named):
        ApiKeys.from_file(_keys_file(tmp_path, limits))


def test_rate_then_quota_per_key() -> None:
    limiter = LookupLimiter(
        LookupLimits(roles={"clerk": RoleLimits(rate="3/minute", quota="100/day")})
    )
    assert [limiter.admit("key-a", "clerk") for _ in range(3)] == [None] * 3
    first, second = limiter.admit("key-a", "clerk"), limiter.admit("key-a", "clerk")
    assert first is not None and first.rule == "RATE_LIMITED" and first.first
    assert second is not None and not second.first  # audited once per key and minute
    assert 1 <= first.retry_after <= 60
    assert limiter.admit("key-b", "clerk") is None  # per key
    quota = LookupLimiter(
        LookupLimits(roles={"clerk": RoleLimits(rate="99/minute", quota="4/day")})
    )
    assert [quota.admit("k", "clerk") for _ in range(4)] == [None] * 4
    spent = quota.admit("k", "clerk")
    assert spent is not None and spent.rule == "QUOTA_EXCEEDED" and spent.retry_after > 3600


def test_not_found_alert_once_per_window() -> None:
    limiter = LookupLimiter(LookupLimits(not_found_alert=NotFoundAlert(count=3, per_seconds=60)))
    assert [limiter.not_found("k") for _ in range(6)] == [False, False, True, False, False, False]
    assert limiter.not_found("other") is False


def test_lockout_after_failed_keys_per_address() -> None:
    limiter = LookupLimiter(LookupLimits(lockout=Lockout(failures=3, lockout_seconds=600)))
    assert limiter.locked_out("10.0.0.7") is None
    assert [limiter.failed_key("10.0.0.7") for _ in range(3)] == [False, False, True]
    locked = limiter.locked_out("10.0.0.7")
    assert locked is not None and locked.rule == "LOCKED_OUT" and 1 <= locked.retry_after <= 600
    assert limiter.failed_key("10.0.0.7") is False  # already locked: no second lockout event
    assert limiter.locked_out("10.0.0.8") is None


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        (None, "none"),
        ("", "none"),
        ("short-key", "…(9 chars)"),
        ("dck_" + "A" * 43, "dck_…(47 chars)"),
        ("330106199003070778" + "x" * 4, "3301…(22 chars)"),
        ("钥匙" * 12, "…(24 chars)"),
    ],
)
def test_key_hint_shows_at_most_four_characters(key: str | None, hint: str) -> None:
    assert key_hint(key) == hint


def test_a_keys_file_repeating_a_key_is_refused_naming_the_file(tmp_path: Path) -> None:
    from datacloud.lookup.auth import ApiKeys, KeysFileError, hash_key

    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n"
        f"  - holder: 窗口1\n    role: clerk\n    role: auditor\n    sha256: {hash_key('k' * 40)}\n",
        encoding="utf-8",
    )
    with pytest.raises(KeysFileError, match=r"keys\.yaml") as e:
        ApiKeys.from_file(path)
    assert "role" in str(e.value)
