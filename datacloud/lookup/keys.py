"""One looked-up number through the same normalisers as the nightly pipeline.

A person key goes through ``transforms.id_number.normalise_id_number`` (full-width digits,
lower-case x, separators, 15-digit legacy numbers upgraded); an enterprise key through
``transforms.credit_code.normalise_credit_code`` (credit code, or a legacy 注册号 / 组织机构代码).
A key the rules reject raises ``MalformedKey`` naming the rule. A clean 18-character key takes
the scalar checks of the same modules (``is_valid_id_number``, ``is_valid_credit_code``): one
key through the vectorised normaliser costs about 0.4 ms, through the scalar check microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import pyarrow as pa

from transforms.credit_code import is_valid_credit_code, normalise_credit_code
from transforms.id_number import is_valid_id_number, normalise_id_number
from transforms.result import NormaliseContext
from transforms.rules import rule

MAX_KEY_CHARS = 64
EnterpriseKeyKind = Literal["credit_code", "reg_number", "org_code"]


class MalformedKey(ValueError):
    """The looked-up number breaks a rule: the field, the rule code and its messages."""

    def __init__(self, field: str, code: str) -> None:
        self.field = field
        self.code = code
        known = rule(code) if code != "KEY_TOO_LONG" else None
        self.message_en = (
            known.en if known else f"The key is longer than {MAX_KEY_CHARS} characters."
        )
        self.message_zh = known.zh if known else f"查询号码超过{MAX_KEY_CHARS}个字符。"
        super().__init__(f"{field}: rule {code}: {self.message_en}")


@dataclass(frozen=True)
class EnterpriseKey:
    kind: EnterpriseKeyKind
    value: str


def _one(raw: str, field: str) -> pa.Array:
    if len(raw) > MAX_KEY_CHARS:
        raise MalformedKey(field, "KEY_TOO_LONG")
    return pa.array([raw], pa.string())


def person_key(raw: str, today: date | None = None) -> str:
    """The normalised 18-character ID number for ``raw``, or ``MalformedKey``.

    Birth dates after ``today`` (default: the current date) are rejected, as the nightly rules
    reject them after the business date.
    """
    today = today or date.today()
    plain = raw.strip().upper()
    if len(plain) == 18 and plain.isascii() and is_valid_id_number(plain, today):
        return plain  # the common case, checked by the scalar form of the same rules
    out = normalise_id_number(_one(raw, "id_number"), NormaliseContext(business_date=today))
    value = out.values[0].as_py()
    if value is None:
        raise MalformedKey("id_number", out.issues[0].as_py() or "ID_LENGTH")
    return str(value)


def enterprise_key(raw: str) -> EnterpriseKey:
    """A credit code, or a legacy 15-digit 注册号 or 9-character 组织机构代码; else ``MalformedKey``."""
    plain = raw.strip().upper()
    if len(plain) == 18 and plain.isascii() and is_valid_credit_code(plain):
        return EnterpriseKey("credit_code", plain)
    out = normalise_credit_code(_one(raw, "code"), NormaliseContext(business_date=date.today()))
    for kind in ("credit_code", "reg_number", "org_code"):
        column = out.values if kind == "credit_code" else out.extras[kind]
        value = column[0].as_py()
        if value is not None:
            return EnterpriseKey(kind, str(value))
    raise MalformedKey("code", out.issues[0].as_py() or "CC_LENGTH")
