"""Readers: a query's rows as Arrow batches, by the Arrow-native path or SQLAlchemy streaming.

``native`` reads PostgreSQL through ADBC (binary COPY, one batch at a time as the consumer
asks, so memory stays bounded) and MySQL/MariaDB through connectorx: rows go from the wire
into Arrow without Python objects. connectorx reads ahead of its consumer (measured: a whole
5M-row table held in memory when the consumer lags), so PostgreSQL, the bulk, avoids it.
SQLite is read through SQLAlchemy: its column types are only declarations (a DECIMAL column
may hold REAL values), on which connectorx panics.

``sqlalchemy`` streams through a server-side cursor (``yield_per``) for any dialect
SQLAlchemy supports. Queries with parameters (chunk bounds, incremental windows) stay on the
native path where it can take them safely. :func:`literal` is a strict formatter that renders
only ``int``, ``date`` and naive ``datetime`` values and refuses everything else. connectorx
cannot bind, so MySQL/MariaDB bounds are rendered by it (text bounds go through SQLAlchemy,
bound). On PostgreSQL, bounds it renders are rendered too, so the query still streams through
COPY; other bounds (a text chunk key) are bound by ADBC as ``$n`` parameters (values, never SQL
text), and ADBC then holds that query's whole result: one chunk, not the table.
The ``:name`` placeholders are found by SQLAlchemy's own ``text()`` parser on every path, so
a query means the same whichever path reads it. Both paths give the same Arrow types after
:func:`conform`:
integers int64, exact decimals decimal128(38, 10), floats float64, text string, dates date32,
timestamps timestamp[us] (time-zone-aware ones in UTC), binary binary.

Text that is not valid in the source's declared encoding (``encoding``, the department's
``source_encoding``, UTF-8 unless declared) never fails a read: each undecodable byte comes
through as ``\ufffd\\xNN`` (``transforms.adapters.decode_escaped``) and normalisation rejects
that row as ENCODING_INVALID. Where the bytes can be undecodable: a PostgreSQL ``SQL_ASCII``
database (no conversion on the server; psycopg2 is asked for the bytes, ADBC's strings are
checked), and SQLite (its TEXT is whatever the writer stored). MySQL/MariaDB convert to the
connection's utf8mb4 on the server, which replaces an unconvertible character by ``?``, so the
declared encoding does not apply to them.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import bindparam, event, text
from sqlalchemy.dialects.mysql import pymysql
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.types import UserDefinedType

from datacloud.connections import engine as source_engine
from transforms.adapters import decode_escaped

Path_ = Literal["auto", "native", "sqlalchemy"]
NATIVE_DIALECTS = {
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}
DECIMAL = pa.decimal128(38, 10)


class ReaderError(RuntimeError):
    """A value could not be carried over exactly (never silently cast or nulled)."""


class UnsafeLiteral(ValueError):
    """A parameter value the literal formatter does not render (only int, date, datetime)."""


def literal(value: object) -> str:
    """A bound value as SQL literal text for connectorx, which cannot bind parameters.

    Only exact ``int`` (not ``bool``), ``date`` and naive ``datetime`` are rendered, from their
    numeric fields (never from ``str()`` of the value); anything else, a subclass included,
    raises UnsafeLiteral. No rendered literal can hold a quote, a comment or a statement
    separator.
    """
    kind = type(value)
    if kind is int:
        return str(int.__int__(value))  # type: ignore[arg-type]
    if kind is datetime:
        assert isinstance(value, datetime)
        if value.tzinfo is not None:
            raise UnsafeLiteral("a time-zone-aware timestamp is not rendered as a literal")
        return (
            f"'{value.year:04d}-{value.month:02d}-{value.day:02d} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}'"
        )
    if kind is date:
        assert isinstance(value, date)
        return f"'{value.year:04d}-{value.month:02d}-{value.day:02d}'"
    raise UnsafeLiteral(f"a {kind.__name__} value is not rendered as a literal")


def literal_safe(params: Mapping[str, Any]) -> bool:
    """Whether :func:`literal` renders every value of ``params``."""
    try:
        for v in params.values():
            literal(v)
    except UnsafeLiteral:
        return False
    return True


def choose(url: URL | str, params: Mapping[str, Any] | None, prefer: Path_ = "auto") -> str:
    """The path a query takes: native where the dialect has one and can take the query's
    parameters (ADBC binds any; connectorx only literal-safe bounds), else SQLAlchemy."""
    backend = make_url(url).get_backend_name()
    if prefer == "sqlalchemy":
        return "sqlalchemy"
    if backend in NATIVE_DIALECTS:
        if not params or NATIVE_DIALECTS[backend] == "postgresql" or literal_safe(params):
            return "native"
        if prefer == "native":
            raise ValueError("connectorx cannot bind these parameters (not int, date or datetime)")
        return "sqlalchemy"
    if prefer == "native":
        raise ValueError(f"no Arrow-native reader for dialect {backend!r}")
    return "sqlalchemy"


class _Literal(UserDefinedType[Any]):
    """A bind rendered by :func:`literal` (``literal_binds`` compilation)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "LITERAL"

    def literal_processor(self, dialect: Any) -> Callable[[Any], str]:
        return literal


def _names(sql: str) -> set[str]:
    return set(text(sql).compile().binds)


def _check_params(sql: str, params: Mapping[str, Any]) -> None:
    names = _names(sql)
    if names != set(params):
        raise ValueError(
            f"the query's parameters {sorted(names)} are not the values given {sorted(params)}"
        )


def with_literals(sql: str, params: Mapping[str, Any], postgresql: bool = False) -> str:
    """``sql`` with each ``:name`` replaced by ``literal(params[name])`` (MySQL/MariaDB, or
    PostgreSQL with ``postgresql``)."""
    _check_params(sql, params)
    for v in params.values():
        literal(v)  # refused here, before SQLAlchemy (which renders None as NULL itself)
    stmt = text(sql).bindparams(*(bindparam(k, v, type_=_Literal()) for k, v in params.items()))
    # paramstyles that do not double the query's own % signs
    dialect = asyncpg.dialect() if postgresql else pymysql.dialect(paramstyle="named")
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def positional(sql: str, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """``sql`` with PostgreSQL's ``$n`` placeholders and the values in their order (ADBC)."""
    _check_params(sql, params)
    compiled = text(sql).compile(dialect=asyncpg.dialect())
    order = compiled.positiontup or []
    return compiled.string, tuple(params[n] for n in order)


def _native_url(url: URL | str) -> str:
    u = make_url(url)
    scheme = NATIVE_DIALECTS[u.get_backend_name()]
    query = {"connect_timeout": "30"} if scheme == "postgresql" else {}
    return u.set(drivername=scheme, query=query).render_as_string(hide_password=False)


def _adbc_postgresql(
    url: URL | str, sql: str, params: Mapping[str, Any] | None
) -> Iterator[pa.RecordBatch]:
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(_native_url(url)) as conn, conn.cursor() as cur:
        if params and literal_safe(params):
            # as literals the query is read through COPY, a batch at a time; ADBC executes a
            # query with bound parameters eagerly and holds its whole result (measured: 610
            # MiB for 1M czrk rows against 208 MiB through COPY)
            cur.execute(with_literals(sql, params, postgresql=True))
        elif params:
            query, values = positional(sql, params)
            cur.execute(query, values)
        else:
            cur.execute(sql)
        yield from cur.fetch_record_batch()


def _native(
    url: URL | str, sql: str, batch_size: int, params: Mapping[str, Any] | None = None
) -> Iterator[pa.RecordBatch]:
    if NATIVE_DIALECTS[make_url(url).get_backend_name()] == "postgresql":
        yield from _adbc_postgresql(url, sql, params)
        return
    import connectorx as cx

    if params:
        sql = with_literals(sql, params)
    try:
        reader = cx.read_sql(
            _native_url(url), sql, return_type="arrow_stream", batch_size=batch_size
        )
        yield from reader
    except BaseException as e:  # connectorx's Rust panics are BaseException, not Exception
        if type(e).__name__ != "PanicException":
            raise
        raise ReaderError(f"the native reader failed: {str(e).splitlines()[0][:300]}") from None


def is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def text_decoder(encoding: str) -> Callable[[bytes], str]:
    """bytes → str in ``encoding``, each undecodable byte as ``\ufffd\\xNN`` (never raises)."""
    if not is_utf8(encoding):
        return lambda value: decode_escaped(value, encoding)

    def decode(value: bytes) -> str:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return decode_escaped(value, "utf-8")

    return decode


def _text_as_bytes(engine: Any, decode: Callable[[bytes], str]) -> bool:
    """Make the driver hand text over undecoded where it would otherwise raise on a bad byte;
    True when the values then come as ``bytes`` that ``_array`` must decode (psycopg2)."""
    driver = engine.dialect.driver
    if driver == "psycopg2":
        import psycopg2.extensions as ext

        @event.listens_for(engine, "connect")
        def _bytes(dbapi_conn: Any, _record: Any) -> None:
            if dbapi_conn.get_parameter_status("server_encoding") == "SQL_ASCII":
                # The stored bytes as they are: any other client encoding makes the server
                # refuse the whole result at the first invalid byte. psycopg2 would encode
                # the query as ASCII for SQL_ASCII; this connection encodes it as UTF-8.
                default = ext.encodings["SQLASCII"]
                ext.encodings["SQLASCII"] = "utf_8"
                try:
                    dbapi_conn.set_client_encoding("UTF8")
                    dbapi_conn.set_client_encoding("SQL_ASCII")
                finally:
                    ext.encodings["SQLASCII"] = default
            else:
                dbapi_conn.set_client_encoding("UTF8")  # the server converts, always valid
            ext.register_type(ext.BYTES, dbapi_conn)

        return True
    if driver == "pysqlite":

        @event.listens_for(engine, "connect")
        def _text_factory(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.text_factory = decode

    return False


def _sqlalchemy(
    url: URL | str,
    sql: str,
    params: Mapping[str, Any] | None,
    batch_size: int,
    encoding: str = "utf-8",
) -> Iterator[pa.Table]:
    engine = source_engine(url)
    decode = text_decoder(encoding)
    as_bytes = _text_as_bytes(engine, decode)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
                text(sql), dict(params or {})
            )
            names = list(result.keys())
            for rows in result.partitions(batch_size):
                cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
                values = [list(c) for c in cols]
                if as_bytes:  # psycopg2's text as bytes (its bytea comes as memoryview)
                    values = [_decoded(v, decode) for v in values]
                yield pa.table({n: _array(v) for n, v in zip(names, values, strict=True)})
    finally:
        engine.dispose()


def _decoded(values: list[Any], decode: Callable[[bytes], str]) -> list[Any]:
    if not any(type(v) is bytes for v in values):
        return values
    return [decode(v) if type(v) is bytes else v for v in values]


def repair_text(arr: pa.Array, encoding: str = "utf-8") -> pa.Array:
    """A string array whose bytes may not be valid UTF-8 (an Arrow-native reader passes a
    SQL_ASCII database's bytes through) as valid text: for UTF-8 sources only when it does
    not validate, else always; each distinct non-ASCII value is decoded once in ``encoding``,
    undecodable bytes as ``\ufffd\\xNN``."""
    if is_utf8(encoding):
        try:
            arr.validate(full=True)
            return arr
        except pa.ArrowInvalid:
            pass
    non_ascii = pc.invert(pc.string_is_ascii(arr)).fill_null(False)
    if not pc.any(non_ascii).as_py():
        return arr
    raw = pc.filter(arr.view(pa.binary()), non_ascii)
    encoded = pc.dictionary_encode(raw)
    decode = text_decoder(encoding)
    texts = [decode(v) for v in encoded.dictionary.to_pylist()]
    decoded = pa.array(texts, pa.string()).take(encoded.indices)
    return pc.replace_with_mask(arr, non_ascii, decoded)


def _repaired(table: pa.Table, encoding: str) -> pa.Table:
    for i, f in enumerate(table.schema):
        if pa.types.is_string(f.type):
            col = pa.chunked_array(
                [repair_text(c, encoding) for c in table.column(i).chunks], f.type
            )
            table = table.set_column(i, f, col)
    return table


def _array(values: list[Any]) -> pa.Array:
    from decimal import Decimal

    if any(isinstance(v, Decimal) for v in values):
        try:
            return pa.array(values, DECIMAL)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise ReaderError(f"a decimal does not fit decimal128(38, 10) exactly: {e}") from None
    return pa.array(values)


def _conform_type(t: pa.DataType) -> pa.DataType:
    if isinstance(t, pa.OpaqueType):  # ADBC: PostgreSQL types Arrow has no type for, as text
        return DECIMAL if t.type_name == "numeric" else _conform_type(t.storage_type)
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_decimal(t):
        return DECIMAL
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_date(t):
        return pa.date32()
    return t


def conform(batch: pa.RecordBatch | pa.Table) -> pa.Table:
    """Cast a batch to the platform's raw types; a lossy cast raises instead of rounding."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    schema = pa.schema([f.with_type(_conform_type(f.type)).remove_metadata() for f in table.schema])
    if schema == table.schema:
        return table
    columns = [
        col.combine_chunks().storage if isinstance(col.type, pa.ExtensionType) else col
        for col in table.columns
    ]
    table = pa.Table.from_arrays(columns, names=table.column_names)
    try:
        return table.cast(schema, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ReaderError(f"cannot carry a value over exactly: {e}") from None


def read_batches(
    url: URL | str,
    sql: str,
    params: Mapping[str, Any] | None = None,
    batch_size: int = 50_000,
    prefer: Path_ = "auto",
    encoding: str = "utf-8",
) -> Iterator[pa.Table]:
    """Run ``sql`` and yield conformed Arrow batches of at most ``batch_size`` rows; text in
    ``encoding`` (the source's declared encoding), undecodable bytes escaped (module doc)."""
    if choose(url, params, prefer) == "native":
        if NATIVE_DIALECTS[make_url(url).get_backend_name()] == "mysql":
            encoding = "utf-8"  # the server has converted to utf8mb4 already
        for batch in _native(url, sql, batch_size, params):
            yield _repaired(conform(batch), encoding)
    else:
        for table in _sqlalchemy(url, sql, params, batch_size, encoding):
            yield conform(table)
