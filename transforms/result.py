"""The value types every normaliser returns and receives."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class Normalised:
    """Output of a normaliser: all arrays have the input's length.

    ``values`` holds the cleaned values (null where the raw value was unusable), ``issues`` is a
    ``pa.string()`` array with one rule code per row (the first failure, null when the row is
    fine) and ``extras`` holds additional derived columns by name.
    """

    values: pa.Array
    issues: pa.Array
    extras: dict[str, pa.Array] = field(default_factory=dict)


@dataclass(frozen=True)
class NormaliseContext:
    """What a normaliser may know besides the column: the night's date and per-column options."""

    business_date: datetime.date
    options: Mapping[str, Any] = field(default_factory=dict)
