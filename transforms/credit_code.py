"""统一社会信用代码 (GB 32100-2015), with the legacy 注册号 and 组织机构代码 recognised."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import (
    compact_identifier,
    first_issue,
    fixed_width_matrix,
    identifier_shape,
    issues_array,
    take_or_null,
)
from transforms.codes import PROVINCE_CODES
from transforms.result import NormaliseContext, Normalised

CC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Registration authority (1st character) → entity types (2nd character), as in the national
# code table in use today (GB 32100-2015 and the authorities assigned since, such as A and N).
AUTHORITY_TYPES: dict[str, str] = {
    "1": "1239",  # 机构编制: 机关, 事业单位, 中央编办直接管理机构编制的群众团体, 其他
    "2": "19",  # 外交: 外国常驻新闻机构, 其他
    "3": "123459",  # 司法行政: 律师执业机构, 公证处, 基层法律服务所, 司法鉴定机构, 仲裁委员会, 其他
    "4": "19",  # 文化: 外国在华文化中心, 其他
    "5": "1239",  # 民政: 社会团体, 民办非企业单位, 基金会, 其他
    "6": "129",  # 旅游: 外国旅游部门常驻代表机构, 港澳台地区旅游部门常驻内地代表机构, 其他
    "7": "129",  # 宗教: 宗教活动场所, 宗教院校, 其他
    "8": "19",  # 工会: 基层工会, 其他
    "9": "123",  # 工商/市场监管: 企业, 个体工商户, 农民专业合作社
    "A": "19",  # 中央军委改革和编制办公室: 军队事业单位, 其他
    "N": "1239",  # 农业: 组级, 村级, 乡镇级集体经济组织, 其他
    "Y": "1",  # 其他: not divided further, always 1
}

_ISSUES = (
    "CC_LENGTH",
    "CC_CHARS",
    "CC_CHECK_CHAR",
    "CC_AUTHORITY_TYPE",
    "CC_DIVISION",
    "CC_ORG_CODE",
    "CC_REG_NUMBER_CHECK",
    "CC_LEGACY_REG_NUMBER",
    "CC_LEGACY_ORG_CODE",
)
(_LENGTH, _CHARS, _CHECK, _AUTH, _DIVISION, _ORG, _REG_CHECK, _LEGACY_REG, _LEGACY_ORG) = range(
    len(_ISSUES)
)


def _lookup(alphabet: str) -> np.ndarray:
    table = np.full(256, -1, dtype=np.int16)
    table[np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)] = np.arange(len(alphabet))
    return table


_CC_VALUE = _lookup(CC_ALPHABET)
_ORG_VALUE = _lookup(ORG_ALPHABET)
_CC_CHARS = np.frombuffer(CC_ALPHABET.encode("ascii"), dtype=np.uint8)
_ORG_CHECK = np.frombuffer(b"0123456789X0", dtype=np.uint8)  # index: 11 - (sum mod 11)
_PAIR_OK = np.zeros((256, 256), dtype=bool)
for _auth, _types in AUTHORITY_TYPES.items():
    _PAIR_OK[ord(_auth), [ord(t) for t in _types]] = True
_PROVINCE_OK = np.zeros(100, dtype=bool)
_PROVINCE_OK[[int(p) for p in PROVINCE_CODES]] = True


def credit_code_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a credit code."""
    if len(first17) != 17 or any(c not in CC_ALPHABET for c in first17):
        raise ValueError("expected 17 characters from the credit-code alphabet")
    total = sum(CC_ALPHABET.index(c) * w for c, w in zip(first17, CC_WEIGHTS, strict=True))
    return CC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The GB 11714 check character (digit or "X") for the first 8 characters of an org code."""
    if len(first8) != 8 or any(c not in ORG_ALPHABET for c in first8):
        raise ValueError("expected 8 characters from 0-9A-Z")
    total = sum(ORG_ALPHABET.index(c) * w for c, w in zip(first8, ORG_WEIGHTS, strict=True))
    return "0123456789X0"[11 - total % 11]


def reg_number_check_digit(first14: str) -> str:
    """The ISO 7064 MOD 11,10 check digit of a 15-digit business registration number (注册号)."""
    if len(first14) != 14 or not (first14.isascii() and first14.isdigit()):
        raise ValueError("expected 14 digits")
    p = 10
    for c in first14:
        s = (p + int(c)) % 10 or 10
        p = s * 2 % 11
    return str((11 - p) % 10)


def is_valid_credit_code(s: str) -> bool:
    """Scalar check of an 18-character credit code: characters, structure, org code, check."""
    s = s.strip().upper()
    if len(s) != 18 or any(c not in CC_ALPHABET for c in s):
        return False
    return (
        s[1] in AUTHORITY_TYPES.get(s[0], "")
        and s[2:8].isdigit()
        and s[2:4] in PROVINCE_CODES
        and org_code_check_char(s[8:16]) == s[16]
        and credit_code_check_char(s[:17]) == s[17]
    )


def _org_check_ok(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chars ok, check ok) for an (n, 9) matrix of organisation codes."""
    values = _ORG_VALUE[m[:, :8]]
    check_is_digit = (m[:, 8] >= ord("0")) & (m[:, 8] <= ord("9"))
    chars_ok = (values >= 0).all(axis=1) & (check_is_digit | (m[:, 8] == ord("X")))
    values = np.where(values >= 0, values, 0).astype(np.int32)
    total = values @ np.array(ORG_WEIGHTS, dtype=np.int32)
    return chars_ok, _ORG_CHECK[11 - total % 11] == m[:, 8]


def _credit_codes(m: np.ndarray) -> np.ndarray:
    """Issue code (or -1) for each row of an (n, 18) matrix of candidate credit codes."""
    values = _CC_VALUE[m]
    chars_ok = (values >= 0).all(axis=1)
    values = np.where(values >= 0, values, 0).astype(np.int32)
    total = values[:, :17] @ np.array(CC_WEIGHTS, dtype=np.int32)
    check_ok = _CC_CHARS[(31 - total % 31) % 31] == m[:, 17]
    pair_ok = _PAIR_OK[m[:, 0], m[:, 1]]
    division_digits = ((m[:, 2:8] >= ord("0")) & (m[:, 2:8] <= ord("9"))).all(axis=1)
    province = np.where(division_digits, values[:, 2] * 10 + values[:, 3], 0)
    division_ok = division_digits & _PROVINCE_OK[province]
    org_chars_ok, org_check_ok = _org_check_ok(m[:, 8:17])
    return first_issue(
        len(m),
        [
            (~chars_ok, _CHARS),
            (~check_ok, _CHECK),
            (~pair_ok, _AUTH),
            (~division_ok, _DIVISION),
            (~(org_chars_ok & org_check_ok), _ORG),
        ],
    )


def _reg_numbers_ok(m: np.ndarray) -> np.ndarray:
    """MOD 11,10 check of an (n, 15) matrix of digit bytes."""
    digits = m.astype(np.int32) - ord("0")
    p = np.full(len(m), 10, dtype=np.int32)
    for i in range(14):
        s = (p + digits[:, i]) % 10
        s[s == 0] = 10
        p = s * 2 % 11
    return (11 - p) % 10 == digits[:, 14]


def normalise_credit_code(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Clean and validate 统一社会信用代码; recognise legacy 注册号 and 组织机构代码.

    Input: ``pa.string()`` (other string types and numbers are cast). Cleaning: NFKC, spaces
    and ``- _ .`` removed, upper-case. Output ``values``: ``pa.string()`` 18-character credit
    code, null when rejected or legacy; ``issues``: CC_LENGTH, CC_CHARS, CC_CHECK_CHAR,
    CC_AUTHORITY_TYPE, CC_DIVISION, CC_ORG_CODE, CC_REG_NUMBER_CHECK (reject), or
    CC_LEGACY_REG_NUMBER / CC_LEGACY_ORG_CODE (warn); extras ``reg_number`` (``pa.string()``,
    a valid 15-digit 注册号) and ``org_code`` (``pa.string()``, a valid 9-character 组织机构代码
    without hyphen), null where the row is not such a legacy number. Blank strings are null.
    """
    cleaned = compact_identifier(raw)
    n = len(cleaned)
    present, n_chars, n_bytes, ascii_ = identifier_shape(cleaned)
    codes = np.where(present, _LENGTH, -1).astype(np.int8)
    codes[((n_chars == 18) | (n_chars == 9)) & ~ascii_] = _CHARS

    idx18 = np.flatnonzero((n_bytes == 18) & ascii_)
    codes[idx18] = _credit_codes(fixed_width_matrix(pc.take(cleaned, idx18), 18))

    idx15 = np.flatnonzero((n_bytes == 15) & ascii_)
    m15 = fixed_width_matrix(pc.take(cleaned, idx15), 15)
    digits15 = ((m15 >= ord("0")) & (m15 <= ord("9"))).all(axis=1)
    reg_ok = np.zeros(len(idx15), dtype=bool)
    reg_ok[digits15] = _reg_numbers_ok(m15[digits15])
    codes[idx15[digits15]] = np.where(reg_ok[digits15], _LEGACY_REG, _REG_CHECK)

    idx9 = np.flatnonzero((n_bytes == 9) & ascii_)
    org_chars_ok, org_check_ok = _org_check_ok(fixed_width_matrix(pc.take(cleaned, idx9), 9))
    codes[idx9] = np.where(~org_chars_ok, _CHARS, np.where(org_check_ok, _LEGACY_ORG, _ORG))

    positions = np.arange(n, dtype=np.int64)
    values = take_or_null(cleaned, np.where(codes == -1, positions, -1))
    reg_number = take_or_null(cleaned, np.where(codes == _LEGACY_REG, positions, -1))
    org_code = take_or_null(cleaned, np.where(codes == _LEGACY_ORG, positions, -1))
    return Normalised(
        values=values,
        issues=issues_array(codes, _ISSUES),
        extras={"reg_number": reg_number, "org_code": org_code},
    )


def normalise_reg_number(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Clean and validate a 15-digit business registration number (工商注册号), as a crosswalk
    of legacy numbers holds it.

    Input: ``pa.string()`` (other string types and numbers are cast). Cleaning as for credit
    codes: NFKC, spaces and ``- _ .`` removed. Output ``values``: ``pa.string()`` 15-digit 注册号,
    null when rejected; ``issues``: CC_REG_NUMBER_CHECK (15 digits failing the MOD 11,10 check)
    or CC_NOT_REG_NUMBER (anything else, a credit code or an organisation code included), both
    reject. Blank strings are null.
    """
    out = normalise_credit_code(raw, ctx)
    kept = pc.equal(out.issues, "CC_LEGACY_REG_NUMBER")
    check = pc.equal(out.issues, "CC_REG_NUMBER_CHECK")
    present = pc.or_(pc.is_valid(out.issues), pc.is_valid(out.values))
    issues = pc.if_else(
        pc.fill_null(kept, False),
        pa.scalar(None, pa.string()),
        pc.if_else(
            pc.fill_null(check, False),
            "CC_REG_NUMBER_CHECK",
            pc.if_else(present, "CC_NOT_REG_NUMBER", pa.scalar(None, pa.string())),
        ),
    )
    return Normalised(values=out.extras["reg_number"], issues=issues)
