"""``datacloud proof``: verify a proof offline, and keep the platform's proof keys.

``datacloud proof verify FILE [--jwks JWKS] [--json]`` checks a proof (the compact JWS, or a
lookup answer saved as JSON with its ``proof``; ``-`` reads stdin) against the published keys:
``--jwks``, else ``$DATACLOUD_PROOF_JWKS``, else the published set of the keyring
``$DATACLOUD_PROOF_KEYS``. Exit codes: 0 valid, 1 invalid (malformed, a changed byte, another
key, a withdrawn key), 6 expired (genuine, but past its ``exp``), 2 usage (no or unreadable
file, no JWKS).

``datacloud proof keys new|rotate|withdraw KID|list|publish [--out FILE]`` keep the keyring
(``--keyring`` or ``$DATACLOUD_PROOF_KEYS``, written with mode 0600): ``new`` makes it with
one current key (refused when it exists), ``rotate`` makes a new current key and keeps the old
one published, ``withdraw`` removes a retired key from the published set (its proofs become
"invalid: unknown key"), ``publish`` prints or writes the JWKS. Exit codes: 0 done, 2 usage or
a keyring refused (missing, readable by others, malformed; the message says which).
docs/proofs.md
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_INVALID = 1
EXIT_EXPIRED = 6
EXIT_USAGE = 2

proof_app = typer.Typer(
    help="Verifiable proofs (电子证明) of lookup answers: verify one, keep the signing keys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(
    help="The platform's proof keys: new, rotate, withdraw, list, publish (JWKS).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
proof_app.add_typer(keys_app, name="keys")

KeyringOpt = Annotated[
    Path | None,
    typer.Option("--keyring", help="the keyring file (default $DATACLOUD_PROOF_KEYS)"),
]


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    from datacloud.masking import mask_text

    typer.echo(f"error: {mask_text(message)}", err=True)
    return typer.Exit(code)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """GmSSL prints its C call trace to file descriptor 2 when a signature does not verify;
    the verdict says it better. Only here, in a one-thread command."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _token(path: str) -> str:
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(f"FILE: cannot read {path}: {type(e).__name__}") from None
    text = raw.strip()
    if text.startswith("{"):  # a lookup answer saved as it came
        try:
            doc = json.loads(text)
        except ValueError:
            return text
        if isinstance(doc, dict) and isinstance(doc.get("proof"), str):
            return str(doc["proof"])
    return text


def _jwks(jwks: Path | None, keyring: Path | None) -> dict[str, Any]:
    from datacloud.lookup import proofs

    named = jwks or (Path(os.environ[proofs.JWKS_ENV]) if os.environ.get(proofs.JWKS_ENV) else None)
    if named is not None:
        try:
            return proofs.load_jwks(named)
        except ValueError as e:
            raise _fail(f"--jwks: {e}") from None
    ring = keyring or (
        Path(os.environ[proofs.KEYS_ENV]) if os.environ.get(proofs.KEYS_ENV) else None
    )
    if ring is None:
        raise _fail(
            f"--jwks: give the published keys (JWKS file), or set {proofs.JWKS_ENV} "
            f"or {proofs.KEYS_ENV}"
        )
    try:
        return proofs.Keyring.load(ring).jwks()
    except proofs.KeyringError as e:
        raise _fail(str(e)) from None


@proof_app.command()
def verify(
    file: Annotated[str, typer.Argument(help="the proof (compact JWS or a saved answer); - stdin")],
    jwks: Annotated[
        Path | None,
        typer.Option("--jwks", help="published keys, JWKS (default $DATACLOUD_PROOF_JWKS)"),
    ] = None,
    keyring: KeyringOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the verdict as JSON")] = False,
) -> None:
    """Is the proof valid, invalid or expired, and why. Exit 0 valid, 1 invalid, 6 expired."""
    from datacloud.lookup import proofs

    token = _token(file)
    keys = _jwks(jwks, keyring)
    with _quiet_stderr():
        verdict = proofs.verify(token, keys)
    if as_json:
        typer.echo(json.dumps(verdict.as_dict(), ensure_ascii=False, indent=2))
    else:
        typer.echo(f"{verdict.status.upper()}: {verdict.message}")
        typer.echo(verdict.message_zh)
        claims = verdict.claims or {}
        for name in ("matter", "case_no", "audit_id", "as_of", "sources"):
            if name in claims:
                typer.echo(f"  {name}: {json.dumps(claims[name], ensure_ascii=False)}")
        if "answer" in claims:
            typer.echo(f"  answer: {json.dumps(claims['answer'], ensure_ascii=False)}")
    if verdict.status == "expired":
        raise typer.Exit(EXIT_EXPIRED)
    if verdict.status != "valid":
        raise typer.Exit(EXIT_INVALID)


def _ring_path(keyring: Path | None) -> Path:
    from datacloud.lookup import proofs

    if keyring is not None:
        return keyring
    if os.environ.get(proofs.KEYS_ENV):
        return Path(os.environ[proofs.KEYS_ENV])
    raise _fail(f"--keyring: give the keyring file, or set {proofs.KEYS_ENV}")


def _load(keyring: Path | None) -> Any:
    from datacloud.lookup import proofs

    try:
        return proofs.Keyring.load(_ring_path(keyring))
    except proofs.KeyringError as e:
        raise _fail(str(e)) from None


@keys_app.command("new")
def keys_new(keyring: KeyringOpt = None) -> None:
    """Make the keyring with one current key (mode 0600); refused when it exists."""
    from datacloud.lookup import proofs

    path = _ring_path(keyring)
    try:
        ring = proofs.Keyring.create(path)
    except proofs.KeyringError as e:
        raise _fail(str(e)) from None
    typer.echo(f"keyring {path}: current key {ring.current().kid}")


@keys_app.command("rotate")
def keys_rotate(keyring: KeyringOpt = None) -> None:
    """A new current key; the old one is retired and stays published (old proofs verify)."""
    ring = _load(keyring)
    old = ring.current().kid
    kid = ring.rotate()
    typer.echo(f"current key {kid}; {old} retired (still published)")


@keys_app.command("withdraw")
def keys_withdraw(
    kid: Annotated[str, typer.Argument(help="the key id of a retired key")],
    keyring: KeyringOpt = None,
) -> None:
    """Remove a retired key from the published set: its proofs become invalid (unknown key)."""
    from datacloud.lookup import proofs

    ring = _load(keyring)
    try:
        ring.withdraw(kid)
    except proofs.KeyringError as e:
        raise _fail(str(e)) from None
    typer.echo(f"key {kid} withdrawn: no longer published; its proofs no longer verify")


@keys_app.command("list")
def keys_list(keyring: KeyringOpt = None) -> None:
    """Each key's id, status (current, retired, withdrawn) and dates."""
    for k in _load(keyring).entries():
        dates = ", ".join(f"{n} {k[n]}" for n in ("created", "retired", "withdrawn") if k[n])
        typer.echo(f"{k['kid']}  {k['status']}  ({dates})")


@keys_app.command("publish")
def keys_publish(
    keyring: KeyringOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="write the JWKS here (default: stdout)")
    ] = None,
) -> None:
    """The published public keys as a JWKS (current and retired keys; no private half)."""
    from datacloud.atomic import replace_text

    text = json.dumps(_load(keyring).jwks(), ensure_ascii=False, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        replace_text(out, text)
        typer.echo(f"JWKS written to {out}", err=True)
