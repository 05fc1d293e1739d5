"""Pure, vectorised normalisers over Arrow arrays for the nightly ETL.

Each normaliser takes a ``pa.Array`` of raw values and a ``NormaliseContext`` and returns a
``Normalised`` (cleaned values, one rule code per row, extra derived columns). The registry
(``transforms.registry``) maps the names used in department YAML to these functions, and
``transforms.rules`` documents every rule code they can emit. No I/O besides reading the code
tables shipped in ``transforms/codes``.
"""
