"""Dirt rates of the sample generator: how much of each kind of bad data to write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class DirtRates:
    """Probability of each dirt kind, per department row and column where it can occur.

    All rates are floats in [0, 1]. ``id_lowercase_x`` is a share of the ID numbers that end in
    X, ``name_dot_variant`` a share of the dotted minority names, ``id_legacy_15`` a share of
    the ID numbers of persons born 1900-1999 and ``legacy_reg_number`` a share of the
    enterprises established before 2015-10-01, ``marital_conflict`` a share of the persons
    married on the business date; the others are shares of all rows. Kinds that compete for one
    field (the ID-number kinds, the credit-code kinds) are mutually exclusive.

    The last six kinds are cross-department conflicts (``datacloud.sample.conflicts``): well
    formed values that disagree with the authoritative department, which the consistency
    check (比对) must find. ``name_conflict`` applies to the name columns of bdc, gjj, scjg and
    mz, ``sex_conflict`` to bdc.xb and gjj.xingbie, ``unregistered_owner`` to bdc_qlr rows,
    ``unregistered_legal_rep`` to qyjbxx rows and ``unregistered_shareholder`` to qygd rows
    (higher: there are few enterprises).
    """

    id_wrong_check: float = 0.01
    id_legacy_15: float = 0.02
    id_lowercase_x: float = 0.5
    id_fullwidth: float = 0.01
    whitespace: float = 0.02
    impossible_date: float = 0.005
    duplicate_row: float = 0.01
    null_field: float = 0.01
    legacy_reg_number: float = 0.05
    updated_after_load: float = 0.03
    name_dot_variant: float = 0.5
    credit_wrong_check: float = 0.01
    credit_lowercase: float = 0.01
    name_conflict: float = 0.003
    sex_conflict: float = 0.003
    unregistered_owner: float = 0.003
    unregistered_legal_rep: float = 0.01
    unregistered_shareholder: float = 0.01
    marital_conflict: float = 0.003

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"dirt rate {f.name}={value!r} must be a number in [0, 1]")

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def parse(cls, items: Sequence[str]) -> DirtRates:
        """Defaults overridden by ``kind=rate`` strings, e.g. ``["whitespace=0.1"]``.

        Raises ValueError naming the bad item: an unknown kind (listing the valid ones), a
        missing ``=``, or a rate that is not a number in [0, 1].
        """
        values: dict[str, float] = {}
        valid = cls.kinds()
        for item in items:
            kind, sep, text = item.partition("=")
            kind = kind.strip()
            if not sep:
                raise ValueError(f"dirt {item!r}: expected kind=rate, e.g. whitespace=0.05")
            if kind not in valid:
                raise ValueError(f"unknown dirt kind {kind!r}; valid kinds: {', '.join(valid)}")
            try:
                rate = float(text)
            except ValueError:
                raise ValueError(f"dirt {kind}: rate {text!r} is not a number") from None
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"dirt {kind}: rate {rate} is outside [0, 1]")
            values[kind] = rate
        return replace(cls(), **values)

    def scaled(self, factor: float) -> DirtRates:
        """Every rate multiplied by ``factor`` and clipped to [0, 1] (0 gives clean data)."""
        if factor < 0:
            raise ValueError(f"dirt scale factor {factor} must not be negative")
        return replace(self, **{k: min(1.0, v * factor) for k, v in asdict(self).items()})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
