"""Verifiable proofs (电子证明): a lookup's answer signed with SM2 as a compact JWS.

A proof is ``BASE64URL(header) . BASE64URL(claims) . BASE64URL(signature)`` (RFC 7515 compact
serialisation). The header is ``{"alg": "SM2", "kid": <key id>, "typ": "datacloud-proof+jws"}``;
the claims are what the lookup service hands the signer (the answer as returned, already
restricted to the matter and masked for the role, the matter, the case number, the curated
versions, the source departments, the audit id, ``iat``) plus ``iss`` and ``exp`` (``iat`` +
``DATACLOUD_PROOF_DAYS``, default 90 days). The signature is SM2 with SM3 over the ASCII bytes of
``header.claims`` with the default signer ID ``1234567812345678`` (GB/T 35276), written as the
64 bytes ``r || s`` as JWS writes ECDSA signatures (``gmssl_pyx`` gives and takes DER).

Keys: the keyring (JSON, ``DATACLOUD_PROOF_KEYS`` names it; mode 0600, never committed) holds
each key's private and public halves; ``rotate`` makes a new current key and keeps the old
public keys published, so old proofs still verify; ``withdraw`` removes a retired key from the
published set (its private half is deleted): its proofs are then "invalid: unknown key". The
published set is a JWKS (``jwks()``; ``kty`` ``EC``, ``crv`` ``SM2``, ``kid`` the RFC 7638
thumbprint). ``verify`` needs only that JWKS: it works offline. docs/proofs.md
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import gmssl_pyx
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datacloud.atomic import replace_with
from datacloud.lookup import sm2_check

log = logging.getLogger(__name__)

ALG = "SM2"
TYP = "datacloud-proof+jws"
ISSUER = "datacloud"
SIGNER_ID: bytes = gmssl_pyx.SM2_DEFAULT_SIGNER_ID  # b"1234567812345678", GB/T 35276
KEYS_ENV = "DATACLOUD_PROOF_KEYS"  # the private keyring (JSON, 0600)
JWKS_ENV = "DATACLOUD_PROOF_JWKS"  # a published JWKS to verify against (offline verifiers)
DAYS_ENV = "DATACLOUD_PROOF_DAYS"  # how long a new proof is valid
DEFAULT_DAYS = 90
MAX_DAYS = 3660
MAX_TOKEN_CHARS = 1 << 20  # a proof larger than this is not one of ours
MAX_HEADER_CHARS = 1024
_ORDER = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)  # SM2's n
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class KeyringError(ValueError):
    """The keyring is missing, unreadable, too open (not 0600) or malformed; or an operation on
    it is refused (the message says which and why, never a key)."""


# --- base64url, strict -----------------------------------------------------------------------------


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    """base64url without padding, canonical only: a character whose change leaves the decoded
    bytes the same (the unused low bits of the last character) is refused, so that no two
    spellings of one proof exist and a changed character never verifies."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64e(data) != text:
        raise ValueError("not canonical base64url")
    return data


# --- keys --------------------------------------------------------------------------------------------


def thumbprint(public: bytes) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of an SM2 public key ``x || y``: the key id."""
    members = {"crv": "SM2", "kty": "EC", "x": b64e(public[:32]), "y": b64e(public[32:])}
    text = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64e(hashlib.sha256(text.encode("ascii")).digest())


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kid: str = Field(pattern=_KID.pattern)
    x: str
    y: str
    d: str | None = None  # the private half; None once withdrawn
    created: str
    retired: str | None = None  # no longer signs; still published
    withdrawn: str | None = None  # no longer published: its proofs are "unknown key"


class _KeyringFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    current: str
    keys: list[_KeyEntry]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    public: bytes  # x || y, 64 bytes
    private: bytes  # 32 bytes

    def __repr__(self) -> str:  # never the private half
        return f"SigningKey(kid={self.kid!r})"


def _public_of(entry: _KeyEntry) -> bytes:
    try:
        x, y = b64d(entry.x), b64d(entry.y)
    except (ValueError, binascii.Error):
        raise KeyringError(f"key {entry.kid}: x and y must be base64url") from None
    if len(x) != 32 or len(y) != 32:
        raise KeyringError(f"key {entry.kid}: x and y must be 32 bytes each")
    return x + y


class Keyring:
    """The platform's proof keys: one current (signs), retired ones (published, verify old
    proofs), withdrawn ones (neither). Loaded from and saved to one JSON file, mode 0600."""

    def __init__(self, path: Path, doc: _KeyringFile) -> None:
        self.path = path
        self._doc = doc

    # -- files --
    @classmethod
    def create(cls, path: Path) -> Keyring:
        """A new keyring with one current key; refused when ``path`` exists."""
        if path.exists() or path.is_symlink():
            raise KeyringError(f"keyring {path} exists; rotate its key instead")
        ring = cls(path, _KeyringFile(current="", keys=[]))
        ring._add_current()
        ring.save()
        return ring

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise KeyringError(
                f"keyring {path} does not exist (datacloud proof keys new)"
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise KeyringError(f"keyring {path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyringError(
                f"keyring {path} is readable or writable by others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it"
            )
        try:
            doc = _KeyringFile.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as e:
            kind = type(e).__name__
            raise KeyringError(f"keyring {path} is not a readable keyring ({kind})") from None
        ring = cls(path, doc)
        ring._check()
        return ring

    @classmethod
    def from_env(cls) -> Keyring:
        name = os.environ.get(KEYS_ENV, "")
        if not name:
            raise KeyringError(f"set {KEYS_ENV} to the proof keyring file (docs/proofs.md)")
        return cls.load(Path(name))

    def save(self) -> None:
        text = self._doc.model_dump_json(indent=2) + "\n"

        def write(tmp: Path) -> None:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)

        replace_with(self.path, write, lock=True)

    def _check(self) -> None:
        kids = [k.kid for k in self._doc.keys]
        if len(set(kids)) != len(kids):
            raise KeyringError(f"keyring {self.path}: a key id appears twice")
        for entry in self._doc.keys:
            if thumbprint(_public_of(entry)) != entry.kid:
                raise KeyringError(
                    f"keyring {self.path}: key {entry.kid}: kid is not its thumbprint"
                )
        current = self._entry(self._doc.current)
        if current is None or current.d is None or current.retired or current.withdrawn:
            raise KeyringError(f"keyring {self.path}: no usable current key")
        key = self.current()
        probe = b"datacloud keyring check"
        der = gmssl_pyx.sm2_sign(key.private, key.public, probe, signer_id=SIGNER_ID)
        if not gmssl_pyx.sm2_verify(key.public, probe, der, signer_id=SIGNER_ID):
            raise KeyringError(f"keyring {self.path}: the current key's halves do not match")

    # -- keys --
    def _entry(self, kid: str) -> _KeyEntry | None:
        return next((k for k in self._doc.keys if k.kid == kid), None)

    def _add_current(self) -> str:
        public, private = gmssl_pyx.sm2_key_generate()
        kid = thumbprint(public)
        entry = _KeyEntry(
            kid=kid, x=b64e(public[:32]), y=b64e(public[32:]), d=b64e(private), created=_now_iso()
        )
        self._doc.keys.append(entry)
        self._doc.current = kid
        return kid

    def current(self) -> SigningKey:
        entry = self._entry(self._doc.current)
        if entry is None or entry.d is None:
            raise KeyringError(f"keyring {self.path}: no usable current key")
        return SigningKey(entry.kid, _public_of(entry), b64d(entry.d))

    def rotate(self) -> str:
        """A new current key; the old one is retired (still published). Saved. The new kid."""
        old = self._entry(self._doc.current)
        if old is not None:
            old.retired = _now_iso()
        kid = self._add_current()
        self.save()
        return kid

    def withdraw(self, kid: str) -> None:
        """Removes a retired key from the published set and deletes its private half (saved):
        proofs it signed become "invalid: unknown key". The current key cannot be withdrawn."""
        entry = self._entry(kid)
        if entry is None:
            raise KeyringError(f"keyring {self.path}: no key {kid}")
        if kid == self._doc.current:
            raise KeyringError(f"key {kid} is the current key: rotate first, then withdraw it")
        if entry.withdrawn is None:
            entry.withdrawn = _now_iso()
            entry.d = None
        self.save()

    def entries(self) -> list[dict[str, Any]]:
        """Each key's id, status and dates (no key material)."""
        return [
            {
                "kid": k.kid,
                "status": _status(k, self._doc.current),
                "created": k.created,
                "retired": k.retired,
                "withdrawn": k.withdrawn,
            }
            for k in self._doc.keys
        ]

    def jwks(self) -> dict[str, Any]:
        """The published public keys (current and retired, not withdrawn) as a JWKS."""
        keys = []
        for k in self._doc.keys:
            if k.withdrawn is not None:
                continue
            keys.append(
                {
                    "kty": "EC",
                    "crv": "SM2",
                    "x": k.x,
                    "y": k.y,
                    "kid": k.kid,
                    "alg": ALG,
                    "use": "sig",
                    "status": _status(k, self._doc.current),
                    "created": k.created,
                }
            )
        return {"keys": keys}

    def signer(self, days: int | None = None) -> KeyringSigner:
        return KeyringSigner(self.current(), days=days if days is not None else days_from_env())


class LiveKeyring:
    """The keyring file as the API server uses it: read again when the file changes (a
    ``rotate`` or ``withdraw`` from the CLI takes effect without a restart). It is the service's
    ``ProofSigner`` (``sign``) and the published JWKS (``jwks``)."""

    def __init__(self, path: Path, days: int | None = None) -> None:
        self.path = path
        self.days = days if days is not None else days_from_env()
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int, int] | None = None
        self._ring = Keyring.load(path)
        self._seen = self._stamp()

    @classmethod
    def from_env(cls) -> LiveKeyring:
        name = os.environ.get(KEYS_ENV, "")
        if not name:
            raise KeyringError(f"set {KEYS_ENV} to the proof keyring file (docs/proofs.md)")
        return cls(Path(name))

    def _stamp(self) -> tuple[int, int, int, int]:
        st = os.stat(self.path)
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def ring(self) -> Keyring:
        with self._lock:
            try:
                stamp = self._stamp()
            except OSError:
                return self._ring  # the file is being replaced: the last good keyring
            if stamp != self._seen:
                try:
                    self._ring = Keyring.load(self.path)
                    self._seen = stamp
                except KeyringError:
                    log.error("proofs: keyring %s unreadable; keeping the last good one", self.path)
            return self._ring

    def sign(self, claims: dict[str, Any]) -> str:
        return self.ring().signer(self.days).sign(claims)

    def jwks(self) -> dict[str, Any]:
        return self.ring().jwks()


def _status(entry: _KeyEntry, current: str) -> str:
    if entry.withdrawn:
        return "withdrawn"
    return "current" if entry.kid == current and not entry.retired else "retired"


def days_from_env() -> int:
    raw = os.environ.get(DAYS_ENV, "")
    if not raw:
        return DEFAULT_DAYS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        raise KeyringError(f"{DAYS_ENV} must be a whole number of days, 1 to {MAX_DAYS}")
    return int(raw)


# --- signing -----------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"a proof claim of type {type(value).__name__} is not JSON")


def _epoch(value: Any, fallback: int) -> int:
    """``iat`` as JWT NumericDate: kept when an int, converted from an ISO timestamp."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())
    return fallback


def _sign_der(key: SigningKey, data: bytes) -> bytes:
    der = gmssl_pyx.sm2_sign(key.private, key.public, data, signer_id=SIGNER_ID)
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class KeyringSigner:
    """The lookup service's ``ProofSigner``: ``sign(claims)`` gives a compact JWS."""

    def __init__(
        self,
        key: SigningKey,
        days: int = DEFAULT_DAYS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.days = days
        self.now = now

    def sign(self, claims: dict[str, Any]) -> str:
        body = dict(claims)
        now = int(self.now())
        body["iat"] = _epoch(body.get("iat"), now)
        body["exp"] = body["iat"] + self.days * 86400
        body["iss"] = ISSUER
        header = {"alg": ALG, "kid": self.key.kid, "typ": TYP}
        head = b64e(json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii"))
        text = json.dumps(
            body, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_jsonable
        )
        signing_input = f"{head}.{b64e(text.encode('utf-8'))}"
        signature = _sign_der(self.key, signing_input.encode("ascii"))
        return f"{signing_input}.{b64e(signature)}"


# --- verifying ---------------------------------------------------------------------------------------

Status = Literal["valid", "invalid", "expired"]

_REASONS: dict[str, tuple[str, str]] = {
    "ok": (
        "valid: signed by key {kid} ({key_status}), valid until {until}",
        "有效：由平台密钥 {kid} 签署，有效期至 {until}",
    ),
    "expired": (
        "expired: the signature is genuine but the proof was valid until {until} only",
        "已过期：签名真实，但该证明的有效期至 {until}，已失效",
    ),
    "malformed": (
        "invalid: not a well-formed proof ({detail})",
        "无效：不是格式正确的电子证明（{detail_zh}）",
    ),
    "unsupported_alg": (
        "invalid: unsupported signature algorithm {alg} (SM2 expected)",
        "无效：不支持的签名算法 {alg}（应为 SM2）",
    ),
    "unknown_key": (
        "invalid: unknown key {kid} (not among the published public keys)",
        "无效：签名密钥 {kid} 不在已公布的公钥中（未知密钥或已撤销）",
    ),
    "bad_signature": (
        "invalid: bad signature (the proof was changed after signing, or another key signed it)",
        "无效：签名验证失败（证明内容在签署后被改动，或不是由该密钥签署）",
    ),
}
_DETAIL_ZH = {
    "not text": "不是文本",
    "too large": "内容过大",
    "not three parts": "应为以点分隔的三段",
    "header": "头部无法解析",
    "typ": "类型不是本平台的电子证明",
    "crit": "含有不支持的关键扩展",
    "kid": "缺少密钥编号",
    "signature encoding": "签名编码错误",
    "claims": "内容无法解析",
    "exp": "缺少有效期",
}


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str  # ok, expired, malformed, unsupported_alg, unknown_key, bad_signature
    message: str
    message_zh: str
    kid: str | None = None
    key_status: str | None = None
    expires_at: str | None = None
    claims: dict[str, Any] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "message_zh": self.message_zh,
            "kid": self.kid,
            "key_status": self.key_status,
            "expires_at": self.expires_at,
            "claims": self.claims,
        }


def _verdict(status: Status, reason: str, **words: Any) -> Verdict:
    en, zh = _REASONS[reason]
    detail = str(words.get("detail", ""))
    values = {
        "kid": "-",
        "key_status": "-",
        "until": "-",
        "alg": "-",
        **words,
        "detail_zh": _DETAIL_ZH.get(detail, detail),
    }
    return Verdict(
        status=status,
        reason=reason,
        message=en.format(**values),
        message_zh=zh.format(**values),
        kid=words.get("kid"),
        key_status=words.get("key_status"),
        expires_at=words.get("until"),
        claims=words.get("claims"),
    )


@dataclass(frozen=True)
class PublicKey:
    kid: str
    public: bytes
    status: str


def published_keys(jwks: Mapping[str, Any]) -> dict[str, PublicKey]:
    """The SM2 keys of a JWKS by kid; entries of other kinds or malformed ones are skipped
    (they can verify nothing here)."""
    out: dict[str, PublicKey] = {}
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    for jwk in keys if isinstance(keys, list) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "SM2":
            continue
        kid, x, y = jwk.get("kid"), jwk.get("x"), jwk.get("y")
        if not (isinstance(kid, str) and isinstance(x, str) and isinstance(y, str)):
            continue
        try:
            public = b64d(x) + b64d(y)
        except (ValueError, binascii.Error):
            continue
        if len(public) == 64 and jwk.get("alg", ALG) == ALG:
            out[kid] = PublicKey(kid, public, str(jwk.get("status") or "published"))
    return out


def _json_part(text: str) -> Any:
    return json.loads(b64d(text).decode("utf-8"))


def _until(exp: int) -> str:
    return datetime.fromtimestamp(exp, UTC).isoformat(timespec="seconds")


def verify(token: Any, jwks: Mapping[str, Any], now: float | None = None) -> Verdict:
    """Whether ``token`` is a proof signed by one of the JWKS's keys and not expired."""
    if not isinstance(token, str):
        return _verdict("invalid", "malformed", detail="not text")
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        return _verdict("invalid", "malformed", detail="too large")
    parts = token.split(".")
    if len(parts) != 3:
        return _verdict("invalid", "malformed", detail="not three parts")
    head_b64, claims_b64, sig_b64 = parts
    if len(head_b64) > MAX_HEADER_CHARS:  # read before the signature: kept small
        return _verdict("invalid", "malformed", detail="header")
    try:
        header = _json_part(head_b64)
    except (ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
        return _verdict("invalid", "malformed", detail="header")
    if not isinstance(header, dict):
        return _verdict("invalid", "malformed", detail="header")
    if header.get("alg") != ALG:
        alg = header.get("alg")
        shown = alg[:20] if isinstance(alg, str) else type(alg).__name__
        return _verdict("invalid", "unsupported_alg", alg=repr(shown))
    if header.get("typ", TYP) != TYP:
        return _verdict("invalid", "malformed", detail="typ")
    if "crit" in header:
        return _verdict("invalid", "malformed", detail="crit")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.match(kid):
        return _verdict("invalid", "malformed", detail="kid")
    key = published_keys(jwks).get(kid)
    if key is None:
        return _verdict("invalid", "unknown_key", kid=kid)
    try:
        raw = b64d(sig_b64)
    except (ValueError, binascii.Error):
        return _verdict("invalid", "malformed", detail="signature encoding", kid=kid)
    if len(raw) != 64:
        return _verdict("invalid", "malformed", detail="signature encoding", kid=kid)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    signed = f"{head_b64}.{claims_b64}".encode("ascii")
    # decided in Python first (GmSSL prints a C trace to fd 2 for each bad signature and has
    # no switch to stop it: datacloud.lookup.sm2_check); GmSSL then sees valid ones only
    ok = 0 < r < _ORDER and 0 < s < _ORDER and sm2_check.verify(key.public, signed, r, s, SIGNER_ID)
    if ok:
        try:
            der = encode_dss_signature(r, s)
            ok = bool(gmssl_pyx.sm2_verify(key.public, signed, der, signer_id=SIGNER_ID))
        except gmssl_pyx.GmsslInnerError:
            ok = False
    if not ok:
        return _verdict("invalid", "bad_signature", kid=kid)
    try:
        claims = _json_part(claims_b64)
    except (ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
        return _verdict("invalid", "malformed", detail="claims", kid=kid)
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int) or isinstance(exp, bool) or not 0 < exp < 1 << 40:
        return _verdict("invalid", "malformed", detail="exp", kid=kid)
    words = {"kid": kid, "key_status": key.status, "until": _until(exp), "claims": claims}
    if (time.time() if now is None else now) >= exp:
        return _verdict("expired", "expired", **words)
    return _verdict("valid", "ok", **words)


def load_jwks(path: Path) -> dict[str, Any]:
    """A JWKS file (``{"keys": [...]}``); ValueError when it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the JWKS {path}: {type(e).__name__}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError(f"{path} is not a JWKS (an object with a keys list)")
    return doc
