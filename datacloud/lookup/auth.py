"""API keys and roles.

Keys live in a YAML file named by ``DATACLOUD_API_KEYS``; it holds each key's SHA-256 hash,
never the key::

    keys:
      - holder: 公积金中心 城东窗口 3号
        role: clerk
        department: gjj
        matters: [gjj_withdrawal]
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

``new_key()`` makes a key (256 random bits) and ``hash_key`` its hash. Roles: a ``clerk``
(service window) sees masked answers; an ``auditor`` sees full values and may search the audit
trail; a ``citizen`` (the citizen portal, for one person: ``subject_hmac``, the HMAC of the
person's ID number under the audit key) and a ``department`` (a providing department, its own
``department`` only) may not call the lookups. ``ALLOWED`` says which role may call which
endpoint. A lookup key belongs to a requesting ``department`` and is granted ``matters``
(codes of ``dags/matters.yaml``): a lookup outside them is refused whatever the role.

The same file may hold a ``limits:`` section (per-role rates and quotas, the lockout after
failed keys, the not-found alert, the body cap; ``datacloud.lookup.limits.LookupLimits``, every
field optional); without it the defaults apply.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from datacloud.config import CODE, ConfigError, read_yaml
from datacloud.lookup.limits import LookupLimits

Role = Literal["clerk", "auditor", "citizen", "department"]
ROLES: tuple[Role, ...] = ("clerk", "auditor", "citizen", "department")
ALLOWED: dict[str, frozenset[str]] = {
    "person": frozenset({"clerk", "auditor"}),
    "enterprise": frozenset({"clerk", "auditor"}),
    "property_status": frozenset({"clerk", "auditor"}),
    "audit_search": frozenset({"auditor"}),
    # the citizen's data tracker (datacloud.lookup.tracker): an auditor, or a citizen for its
    # own ID number only
    "tracker": frozenset({"auditor", "citizen"}),
    # checking a proof (datacloud.lookup.proofs): any key; the proof holds what it certifies
    "proof_verify": frozenset(ROLES),
    # a providing department's problem responses, for its own department only
    "problem_responses": frozenset({"department"}),
}
FULL_RECORD_ROLES = frozenset({"auditor"})


class KeysFileError(ValueError):
    """The API keys file is missing or malformed (the message names file and entry)."""


DEPARTMENT_PATTERN = CODE.pattern  # a department code, as the department YAMLs spell it


class ApiKeyEntry(BaseModel):
    """One key: its holder, role, the requesting ``department`` it belongs to, the ``matters``
    granted to it (lookups outside them are refused), and for a ``citizen`` the
    ``subject_hmac`` of the one person it may ask about."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    holder: str = Field(min_length=1, max_length=200)
    role: Role
    department: str | None = Field(default=None, pattern=DEPARTMENT_PATTERN)
    matters: tuple[str, ...] = ()
    subject_hmac: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _by_role(self) -> ApiKeyEntry:
        if self.role == "citizen" and self.subject_hmac is None:
            raise ValueError("a citizen key needs subject_hmac (the HMAC of its ID number)")
        if self.role != "citizen" and self.subject_hmac is not None:
            raise ValueError("subject_hmac is for citizen keys only")
        if self.department is None and (
            self.role == "department" or (self.role == "clerk" and self.matters)
        ):  # a clerk that may look anything up belongs to a requesting department
            raise ValueError(f"a {self.role} key needs its department (e.g. gjj)")
        if self.role in ("citizen", "department") and self.matters:
            raise ValueError(f"a {self.role} key may not look up, so it has no matters")
        repeated = sorted({m for m in self.matters if self.matters.count(m) > 1})
        if repeated:
            raise ValueError(f"matters: {', '.join(repeated)} listed more than once")
        return self


# keys published in the repository's examples: never accepted
EXAMPLE_KEY_HASHES = frozenset({hashlib.sha256(b"change-me").hexdigest()})


class ApiKeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[ApiKeyEntry]
    limits: LookupLimits = Field(default_factory=lambda: LookupLimits())


@dataclass(frozen=True)
class Principal:
    """Who looks something up: the key holder (or OS user), the role and the channel; for an
    API key also ``key_id``, the first 16 hex digits of the key's SHA-256 (what limits count),
    the requesting ``department``, the ``matters`` granted and, for a citizen, the
    ``subject_hmac`` of its own ID number."""

    holder: str
    role: Role
    channel: Literal["api", "cli"]
    key_id: str = field(default="", compare=False)
    department: str | None = None
    matters: frozenset[str] = frozenset()
    subject_hmac: str | None = None

    def may(self, endpoint: str) -> bool:
        return self.role in ALLOWED[endpoint]

    @property
    def full_records(self) -> bool:
        return self.role in FULL_RECORD_ROLES


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "dck_" + secrets.token_urlsafe(32)


KEY_ID_CHARS = 16
_HINT_MIN_CHARS = 20  # a shorter key shows nothing of itself


def key_hint(key: str | None) -> str:
    """What a log or audit record may say about a key that was refused: its first 4 characters
    when it is long and printable ASCII, and its length; never more."""
    if not key:
        return "none"
    if len(key) >= _HINT_MIN_CHARS and key.isascii() and key.isprintable():
        return f"{key[:4]}…({len(key)} chars)"
    return f"…({len(key)} chars)"


class ApiKeys:
    """The configured keys, by hash: ``authenticate`` hashes the key sent (SHA-256) and looks
    the hash up; the keys themselves are never held or compared (a lookup's timing can tell at
    most something about a stored key's SHA-256, from which the key cannot be found)."""

    def __init__(self, entries: list[ApiKeyEntry], limits: LookupLimits | None = None) -> None:
        self._entries = list(entries)
        self.limits = limits or LookupLimits()
        # the principal of each key, built once (frozen): no work per request beyond the hash
        self._principals = {
            e.sha256: Principal(
                e.holder,
                e.role,
                "api",
                e.sha256[:KEY_ID_CHARS],
                department=e.department,
                matters=frozenset(e.matters),
                subject_hmac=e.subject_hmac,
            )
            for e in self._entries
        }

    @classmethod
    def from_file(
        cls,
        path: Path,
        matters: Collection[str] | None = None,
        departments: Collection[str] | None = None,
    ) -> ApiKeys:
        """The keys of ``path``; with ``matters`` (the catalogue's codes) a key granted a
        matter the catalogue does not have is refused, naming the entry; with ``departments``
        (the providing departments' codes and the catalogue's requesting-only ones) so is a key
        of a department nobody declared (a typo would otherwise fail every lookup with 403)."""
        if not path.exists():
            raise KeysFileError(f"API keys file {path} does not exist")
        try:  # the departments' strict reader: UTF-8 text, no repeated key (no silent last wins)
            parsed = ApiKeysFile.model_validate(read_yaml(path))
        except ConfigError as e:
            raise KeysFileError(f"API keys file {e}") from None
        except ValidationError as e:
            raise KeysFileError(f"API keys file {path}: {e}") from None
        keys = parsed.keys
        known = [k.holder for k in keys if k.sha256 in EXAMPLE_KEY_HASHES]
        if known:
            raise KeysFileError(
                f"API keys file {path}: the key of {', '.join(known)} is the public example key "
                "(deploy/lookup-keys.example.yaml); make real ones with `datacloud lookup new-key`"
            )
        if matters is not None:
            for n, k in enumerate(keys):
                unknown = [m for m in k.matters if m not in matters]
                if unknown:
                    raise KeysFileError(
                        f"API keys file {path}: keys[{n}] ({k.holder}): unknown matter(s) "
                        f"{', '.join(unknown)} (the matters catalogue has {', '.join(matters)})"
                    )
        if departments is not None:
            for n, k in enumerate(keys):
                if k.department is not None and k.department not in departments:
                    raise KeysFileError(
                        f"API keys file {path}: keys[{n}] ({k.holder}): unknown department "
                        f"{k.department!r} (declared: {', '.join(sorted(departments))}; a "
                        "department that provides no data goes in requesting_departments of "
                        "the matters catalogue)"
                    )
        return cls(keys, parsed.limits)

    def authenticate(self, key: str | None) -> Principal | None:
        if not key:
            return None
        return self._principals.get(hash_key(key))
