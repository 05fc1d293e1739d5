"""Normalisers by the names department YAML uses for them."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from transforms.capital import normalise_capital
from transforms.codes import normalise_division, normalise_ethnicity
from transforms.credit_code import normalise_credit_code, normalise_reg_number
from transforms.dates import normalise_date
from transforms.id_number import normalise_id_number
from transforms.names import normalise_enterprise_name, normalise_person_name, normalise_text
from transforms.phones import normalise_phone
from transforms.result import NormaliseContext, Normalised
from transforms.sex import normalise_sex

Normaliser = Callable[[pa.Array, NormaliseContext], Normalised]

NORMALISERS: dict[str, Normaliser] = {
    "id_number": normalise_id_number,
    "credit_code": normalise_credit_code,
    "reg_number": normalise_reg_number,
    "person_name": normalise_person_name,
    "text": normalise_text,
    "enterprise_name": normalise_enterprise_name,
    "sex": normalise_sex,
    "date": normalise_date,
    "phone": normalise_phone,
    "capital": normalise_capital,
    "ethnicity": normalise_ethnicity,
    "division": normalise_division,
}


def get_normaliser(name: str) -> Normaliser:
    """The normaliser registered under ``name``; KeyError listing the known names."""
    try:
        return NORMALISERS[name]
    except KeyError:
        known = ", ".join(sorted(NORMALISERS))
        raise KeyError(f"unknown normaliser {name!r}; known normalisers: {known}") from None
