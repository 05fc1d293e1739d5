"""Sample department databases for the demo and the tests, with the truth behind their dirt.

``generate`` builds the five departments of docs/domain.md (gongan, scjg, bdc, gjj, mz) for a
number of persons and a seed, deterministically; ``write_sqlite`` / ``write_url`` store them,
``write_ground_truth`` stores what was made dirty and how. See docs/sample-data.md.
"""

from datacloud.sample.generate import DEFAULT_BUSINESS_DATE, DEPARTMENTS, SampleData, generate
from datacloud.sample.rates import DirtRates
from datacloud.sample.writer import write_ground_truth, write_sqlite, write_url

__all__ = [
    "DEFAULT_BUSINESS_DATE",
    "DEPARTMENTS",
    "DirtRates",
    "SampleData",
    "generate",
    "write_ground_truth",
    "write_sqlite",
    "write_url",
]
