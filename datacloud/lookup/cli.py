"""``datacloud lookup``: the same lookups from a shell, and the API server.

A CLI lookup runs as a local operator: the principal is the OS user of the process's real uid
(``os:<user>``, or ``os:uid:<n>`` when the uid has no passwd entry; never ``$USER`` or
``$LOGNAME``, which anyone can set), the role comes from ``--role`` (default ``clerk``: masked
answers), ``--matter`` and ``--case-no`` are required (the answer holds only the matter's data
items; the operator may name any matter of the catalogue, and with ``--department`` only one
that department handles), ``--purpose`` is an optional note, and the lookup is audited like an
API call (channel ``cli``). A CLI lookup queries the Delta tables for the one key
(``pointview``) instead of loading a snapshot.

Exit codes, as the shell sees them through ``datacloud`` (``datacloud.cli.run``): lookups 0
answered, 1 not found, 2 malformed key or bad option (message on stderr, naming the rule or
option), 3 audit unavailable, no audit key, no curated data, or no readable matters catalogue,
4 (``property-status``) a valid ID number the household register does not know, owning no
current property here: no answer, never "owns no property", 5 the matter does not allow the
lookup (``MATTER_NOT_GRANTED``: not in the catalogue, not handled by ``--department``, or it
reads nothing this lookup answers); ``serve`` 0 stopped, 2 keys file missing or malformed
(named), 3 no audit key or no curated data; ``new-key`` 0, 2 bad ``--role``, ``--holder``,
``--department``, ``--matter`` or ``--subject``, 3 (``--subject``) no audit key.
"""

from __future__ import annotations

import json
import os
import pwd
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

lookup_app = typer.Typer(
    help="Look up a person, an enterprise or a property status in the curated tables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

Purpose = Annotated[
    str | None, typer.Option("--purpose", help="an optional note on the lookup (audited)")
]
Matter = Annotated[
    str,
    typer.Option(
        "--matter", help="the matter (事项) served, a code of dags/matters.yaml (gjj_withdrawal)"
    ),
]
CaseNo = Annotated[
    str, typer.Option("--case-no", help="the case number (办件编号) served (audited)")
]
Department = Annotated[
    str | None,
    typer.Option("--department", help="the requesting department (must handle the matter)"),
]
Role = Annotated[str, typer.Option("--role", help="clerk (masked) or auditor (full record)")]
AsOf = Annotated[
    str | None, typer.Option("--as-of", help="answer from data published on or before YYYY-MM-DD")
]
AsJson = Annotated[bool, typer.Option("--json", help="print the answer as JSON")]
Proof = Annotated[
    bool,
    typer.Option(
        "--proof", help="also sign the answer as a proof (电子证明; $DATACLOUD_PROOF_KEYS)"
    ),
]
EXIT_PERSON_UNKNOWN = 4  # property-status of a person the household register does not know
EXIT_MATTER_NOT_GRANTED = 5  # the matter does not allow this lookup
LOOKUP_ROLES = ("clerk", "auditor")  # the roles that may look up (a CLI lookup's --role)


def _fail(message: str, code: int) -> typer.Exit:
    from datacloud.masking import mask_text

    typer.echo(f"error: {mask_text(message)}", err=True)
    return typer.Exit(code)


def os_user() -> str:
    """The user of the process's real uid from the passwd database (``uid:<n>`` without an
    entry). Not ``getpass.getuser()``: it reads ``$USER``/``$LOGNAME``, which anyone can set."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def _run(
    endpoint: str,
    key: str,
    matter: str,
    case_no: str,
    purpose: str | None,
    department: str | None,
    role: str,
    as_of: str | None,
    as_json: bool,
    proof: bool = False,
) -> None:
    import re

    from datacloud.config import ConfigError
    from datacloud.lookup.audit import (
        AuditKeyMissing,
        AuditLog,
        AuditUnavailable,
        FileSink,
        audit_key_from_env,
    )
    from datacloud.lookup.auth import DEPARTMENT_PATTERN, Principal
    from datacloud.lookup.keys import MalformedKey
    from datacloud.lookup.pointview import DeltaPointSource
    from datacloud.lookup.service import (
        LookupService,
        MatterNotGranted,
        NotFound,
        PersonUnknown,
        is_blank,
    )
    from datacloud.lookup.store import NoCuratedData
    from datacloud.matters import (
        CASE_NO_PATTERN,
        CASE_NO_PERSONAL,
        CODE_PATTERN,
        case_no_holds_personal_data,
        load_matters,
    )
    from datacloud.paths import StorageRoot
    from datacloud.problem_disputes import DisputeIndex

    if role not in LOOKUP_ROLES:
        raise _fail(f"--role: expected one of {', '.join(LOOKUP_ROLES)}, got {role!r}", 2)
    if purpose is not None and is_blank(purpose):
        raise _fail("--purpose: blank (leave it out, or say why)", 2)
    if not re.fullmatch(CODE_PATTERN, matter):
        raise _fail("--matter: expected a matter code of dags/matters.yaml (gjj_withdrawal)", 2)
    if not re.fullmatch(CASE_NO_PATTERN, case_no):
        raise _fail("--case-no: expected 1 to 64 characters of A-Z a-z 0-9 - _ /", 2)
    if case_no_holds_personal_data(case_no):
        raise _fail(f"--{CASE_NO_PERSONAL.replace('_', '-', 1)}", 2)
    if department is not None and not re.fullmatch(DEPARTMENT_PATTERN, department):
        raise _fail("--department: expected a department code (gjj)", 2)
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise _fail(f"--as-of: expected YYYY-MM-DD, got {as_of!r}", 2) from None
    try:
        audit_key, dev = audit_key_from_env()
    except AuditKeyMissing as e:
        raise _fail(str(e), 3) from None
    try:
        catalogue = load_matters()
    except ConfigError as e:
        raise _fail(f"matters catalogue: {e}", 3) from None
    signer = None
    if proof:  # the platform's proof keyring (docs/proofs.md)
        from datacloud.lookup.proofs import KeyringError, LiveKeyring

        try:
            signer = LiveKeyring.from_env()
        except KeyringError as e:
            raise _fail(f"--proof: {e}", 3) from None
    root = StorageRoot.from_env()
    service = LookupService(
        DeltaPointSource(root),
        AuditLog([FileSink(root.audit())], audit_key, dev),
        catalogue=catalogue,
        signer=signer,
        disputes=DisputeIndex(root).disputes_for,
    )
    # a local operator can read the curated tables anyway: every matter is granted, and the
    # answer is still the matter's items only
    who = Principal(
        f"os:{os_user()}",
        role,  # type: ignore[arg-type]
        "cli",
        department=department,
        matters=frozenset(catalogue.matters),
    )
    try:
        answer = service.lookup(who, endpoint, key, matter, case_no, purpose or "", day, proof)
    except MalformedKey as e:
        raise _fail(f"{e} ({e.message_zh})", 2) from None
    except MatterNotGranted as e:
        raise _fail(f"{e} ({e.message_zh})", EXIT_MATTER_NOT_GRANTED) from None
    except PersonUnknown as e:
        raise _fail(f"{e} ({e.message_zh})", EXIT_PERSON_UNKNOWN) from None
    except NotFound as e:
        raise _fail(str(e), 1) from None
    except (AuditUnavailable, NoCuratedData) as e:
        raise _fail(str(e), 3) from None
    body = {**answer.body, "audit_id": answer.audit_id}
    if as_json:
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        _print(endpoint, body)


def _print(endpoint: str, body: dict[str, Any]) -> None:
    def lines(title: str, rows: list[dict[str, Any]]) -> None:
        typer.echo(f"{title}: {len(rows)}")
        for r in rows:
            typer.echo("  " + ", ".join(f"{k}={v}" for k, v in r.items() if v is not None))

    # a part the matter does not read is not in the answer, and not printed
    if endpoint == "person":
        typer.echo(f"person {body['id_number']}")
        for name, f in body.get("fields", {}).items():
            typer.echo(f"  {name}: {f['value']}  ({f['source']}, {f['as_of']})")
        for part, title in (
            ("property_rights", "property rights"),
            ("housing_fund_accounts", "housing fund accounts"),
            ("marriages", "marriages"),
            ("enterprise_roles", "enterprise roles"),
        ):
            if part in body:
                lines(title, body[part])
    elif endpoint == "enterprise":
        typer.echo(f"enterprise {body['key']['kind']} {body['key']['value']}")
        for k, v in body.get("record", {}).items():
            typer.echo(f"  {k}: {v}")
        if "legal_representative" in body:
            rep = body["legal_representative"]
            typer.echo(
                f"legal representative: {rep.get('name')} {rep.get('id_number')}"
                if rep
                else "legal representative: -"
            )
        if "shareholders" in body:
            lines("shareholders", body["shareholders"])
    else:
        owns = "yes" if body["owns_property"] else "no"
        typer.echo(f"person {body['id_number']} owns property in the province: {owns}")
        if not body.get("person_known", True):
            typer.echo("  not in the household register (a current right names the number)")
        typer.echo(f"  current property rights: {body['property_count']}")
        typer.echo(f"  as of: {body['as_of']}  sources: {', '.join(body['sources'])}")
    if body.get("disputed"):
        # contested facts (docs/problems.md, Responding): check them before refusing on them
        typer.echo(f"disputed: {len(body['disputes'])} contested fact(s)")
        for d in body["disputes"]:
            typer.echo(f"  {d['field']}: {d['status']} since {d['since']} ({d['table']})")
    typer.echo(f"audit id: {body['audit_id']}")
    if body.get("proof"):
        typer.echo(f"proof (datacloud proof verify): {body['proof']}")


@lookup_app.command()
def person(
    id_number: Annotated[str, typer.Argument(help="公民身份号码")],
    matter: Matter,
    case_no: CaseNo,
    purpose: Purpose = None,
    department: Department = None,
    role: Role = "clerk",
    as_of: AsOf = None,
    as_json: AsJson = False,
    proof: Proof = False,
) -> None:
    """A person's golden record with each field's source and as-of date, and linked facts."""
    _run("person", id_number, matter, case_no, purpose, department, role, as_of, as_json, proof)


@lookup_app.command()
def enterprise(
    code: Annotated[str, typer.Argument(help="统一社会信用代码, 注册号 or 组织机构代码")],
    matter: Matter,
    case_no: CaseNo,
    purpose: Purpose = None,
    department: Department = None,
    role: Role = "clerk",
    as_of: AsOf = None,
    as_json: AsJson = False,
    proof: Proof = False,
) -> None:
    """An enterprise's golden record, legal representative and shareholders."""
    _run("enterprise", code, matter, case_no, purpose, department, role, as_of, as_json, proof)


@lookup_app.command("property-status")
def property_status(
    id_number: Annotated[str, typer.Argument(help="公民身份号码")],
    matter: Matter,
    case_no: CaseNo,
    purpose: Purpose = None,
    department: Department = None,
    role: Role = "clerk",
    as_of: AsOf = None,
    as_json: AsJson = False,
    proof: Proof = False,
) -> None:
    """Does the person hold a current (现势) property right in the province?"""
    _run(
        "property_status",
        id_number,
        matter,
        case_no,
        purpose,
        department,
        role,
        as_of,
        as_json,
        proof,
    )


@lookup_app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8080,
    keys: Annotated[
        Path | None, typer.Option(help="API keys YAML (default $DATACLOUD_API_KEYS)")
    ] = None,
    poll_seconds: Annotated[float, typer.Option(help="how often to look for a new publish")] = 1.0,
    workers: Annotated[int, typer.Option(help="worker processes on one socket")] = 1,
) -> None:
    """Run the lookup HTTP API (uvicorn)."""
    from datacloud.lookup.api import KEYS_ENV
    from datacloud.lookup.api import serve as run
    from datacloud.lookup.audit import AuditKeyMissing
    from datacloud.lookup.auth import KeysFileError
    from datacloud.lookup.proofs import KeyringError
    from datacloud.lookup.store import NoCuratedData

    path = keys or (Path(os.environ[KEYS_ENV]) if os.environ.get(KEYS_ENV) else None)
    if path is None:
        raise _fail(f"--keys: give the API keys YAML, or set {KEYS_ENV} (docs/lookup.md)", 2)
    try:
        run(host, port, path, poll_seconds, workers)
    except (KeysFileError, KeyringError) as e:  # KeyringError: DATACLOUD_PROOF_KEYS unusable
        raise _fail(str(e), 2) from None
    except UnicodeDecodeError:
        raise _fail(f"API keys file {path}: not UTF-8 text", 2) from None
    except OSError as e:
        if e.filename is None or Path(e.filename) != path:
            raise
        raise _fail(f"API keys file {path}: cannot read: {e.strerror}", 2) from None
    except (AuditKeyMissing, NoCuratedData) as e:
        raise _fail(str(e), 3) from None


@lookup_app.command("new-key")
def new_key(
    holder: Annotated[str, typer.Option(help="who holds the key (window, system, person)")],
    role: Annotated[
        str, typer.Option("--role", help="clerk, auditor, citizen or department")
    ] = "clerk",
    department: Annotated[
        str | None,
        typer.Option(
            "--department",
            help="the requesting department the key belongs to (needed by clerk keys with "
            "matters and department keys), e.g. gjj",
        ),
    ] = None,
    matter: Annotated[
        list[str] | None,
        typer.Option("--matter", help="a matter granted to the key (repeat for several)"),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject",
            help="citizen keys: the person's ID number, or - to read it from stdin (only its "
            "HMAC under DATACLOUD_AUDIT_KEY is written)",
        ),
    ] = None,
) -> None:
    """Make an API key: the key once on stderr (hand it over), and on stdout a complete keys file
    holding its hash (``> keys.yaml`` gives a file the server loads; its ``- holder:`` entry
    pastes under the ``keys:`` of an existing file)."""
    import sys

    from pydantic import ValidationError

    from datacloud.config import ConfigError
    from datacloud.lookup.auth import ROLES, ApiKeyEntry, hash_key
    from datacloud.lookup.auth import new_key as make

    if role not in ROLES:
        raise _fail(f"--role: expected one of {', '.join(ROLES)}, got {role!r}", 2)
    matters = tuple(matter or ())
    if matters:
        from datacloud.matters import load_matters

        try:
            known = load_matters().matters
        except ConfigError as e:
            raise _fail(f"matters catalogue: {e}", 2) from None
        unknown = [m for m in matters if m not in known]
        if unknown:
            raise _fail(
                f"--matter: {', '.join(unknown)} not in the matters catalogue "
                f"(known: {', '.join(known)})",
                2,
            )
    subject_hmac = None
    if subject is not None:
        subject_hmac = _subject_hmac(sys.stdin.read() if subject == "-" else subject)
    key = make()
    try:  # the keys file's own rules, so what is printed always loads
        entry = ApiKeyEntry(
            holder=holder,
            role=role,
            department=department,
            matters=matters,
            subject_hmac=subject_hmac,
            sha256=hash_key(key),
        )
    except ValidationError as e:
        err = e.errors()[0]
        where = {"department": "--department", "holder": "--holder"}.get(
            str(err["loc"][0]) if err.get("loc") else "", "--role"
        )
        problem = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if where == "--holder":
            problem += " (1 to 200 characters)"
        raise _fail(f"{where}: {problem}", 2) from None
    typer.echo(f"key (shown once, hand it to {entry.holder!r}; it is not stored): {key}", err=True)
    typer.echo(f"# API keys file (docs/lookup.md); {entry.role} key of {entry.holder!r}")
    typer.echo("keys:")
    # a JSON string is a YAML double-quoted scalar: any holder (quotes, colons, newlines) survives
    typer.echo(f"  - holder: {json.dumps(entry.holder, ensure_ascii=False)}")
    typer.echo(f"    role: {entry.role}")
    if entry.department is not None:
        typer.echo(f"    department: {entry.department}")
    if entry.matters:
        typer.echo(f"    matters: [{', '.join(entry.matters)}]")
    if entry.subject_hmac is not None:
        typer.echo(f"    subject_hmac: {entry.subject_hmac}")
    typer.echo(f"    sha256: {entry.sha256}")


def _subject_hmac(raw: str) -> str:
    """A citizen key's ``subject_hmac``: HMAC-SHA256 of the normalised ID number under the
    audit key (the same value as the ``key_hmac`` of an audit record of a lookup of it)."""
    from datacloud.lookup.audit import AuditKeyMissing, AuditLog, audit_key_from_env
    from datacloud.lookup.keys import MalformedKey, person_key

    try:
        number = person_key(raw)
    except MalformedKey as e:
        raise _fail(f"--subject: rule {e.code}: {e.message_en} ({e.message_zh})", 2) from None
    try:
        audit_key, dev = audit_key_from_env()
    except AuditKeyMissing as e:
        raise _fail(str(e), 3) from None
    # AuditLog.key_hash is the audit records' own hash; no sink is written
    return AuditLog([_NoSink()], audit_key, dev).key_hash(number)


class _NoSink:
    def write(self, record: dict[str, Any]) -> None:  # pragma: no cover - never called
        raise RuntimeError("not a writer")
