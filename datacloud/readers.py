"""Readers: a query's rows as Arrow batches, by the Arrow-native path or SQLAlchemy streaming.

``native`` reads PostgreSQL through ADBC (binary COPY, one batch at a time as the consumer
asks, so memory stays bounded) and MySQL/MariaDB through connectorx: rows go from the wire
into Arrow without Python objects. connectorx reads ahead of its consumer (measured: a whole
5M-row table held in memory when the consumer lags), so PostgreSQL, the bulk, avoids it.
SQLite is read through SQLAlchemy: its column types are only declarations (a DECIMAL column
may hold REAL values), on which connectorx panics.

``sqlalchemy`` streams through a server-side cursor (``yield_per``) for any dialect
SQLAlchemy supports, and is the only path for queries with bound parameters (neither native
reader is used with them). Both paths give the same Arrow types after :func:`conform`:
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
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url

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


def choose(url: URL | str, params: Mapping[str, Any] | None, prefer: Path_ = "auto") -> str:
    """The path a query takes: native where the dialect has one and the query has no parameters."""
    backend = make_url(url).get_backend_name()
    if prefer == "sqlalchemy" or params:
        return "sqlalchemy"
    if backend in NATIVE_DIALECTS:
        return "native"
    if prefer == "native":
        raise ValueError(f"no Arrow-native reader for dialect {backend!r}")
    return "sqlalchemy"


def _native_url(url: URL | str) -> str:
    u = make_url(url)
    scheme = NATIVE_DIALECTS[u.get_backend_name()]
    query = {"connect_timeout": "30"} if scheme == "postgresql" else {}
    return u.set(drivername=scheme, query=query).render_as_string(hide_password=False)


def _adbc_postgresql(url: URL | str, sql: str) -> Iterator[pa.RecordBatch]:
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(_native_url(url)) as conn, conn.cursor() as cur:
        cur.execute(sql)
        yield from cur.fetch_record_batch()


def _native(url: URL | str, sql: str, batch_size: int) -> Iterator[pa.RecordBatch]:
    if NATIVE_DIALECTS[make_url(url).get_backend_name()] == "postgresql":
        yield from _adbc_postgresql(url, sql)
        return
    import connectorx as cx

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
        for batch in _native(url, sql, batch_size):
            yield _repaired(conform(batch), encoding)
    else:
        for table in _sqlalchemy(url, sql, params, batch_size, encoding):
            yield conform(table)
