"""The API docs page, rendered here from the OpenAPI spec: self-contained, no CDN asset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

STATIC = Path(__file__).resolve().parent.parent / "static"


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return str(ref).rsplit("/", 1)[-1] if ref else None


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(_ref_name(schema))
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if schema.get("type") == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return f"object of {_type_of(extra) if isinstance(extra, dict) else 'any'}"
    kind = str(schema.get("type", "any"))
    return f"{kind} ({schema['format']})" if "format" in schema else kind


_CONSTRAINTS = ("minLength", "maxLength", "minimum", "maximum", "pattern", "default")


def docs_page(spec: dict[str, Any]) -> str:
    """The API docs as one HTML page rendered from the OpenAPI spec: endpoints, their bodies,
    answers and errors, the schemas, examples; no script, no style sheet, no URL elsewhere."""
    endpoints = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            body = (op.get("requestBody", {}).get("content", {}).get("application/json", {})).get(
                "schema", {}
            )
            responses = []
            for code, resp in op.get("responses", {}).items():
                schema = resp.get("content", {}).get("application/json", {}).get("schema", {})
                responses.append(
                    {
                        "code": code,
                        "description": resp.get("description", ""),
                        "schema": _ref_name(schema),
                    }
                )
            body_name = _ref_name(body)
            schemas = spec.get("components", {}).get("schemas", {})
            required = schemas.get(body_name, {}).get("required", []) if body_name else []
            example = {f: f"<{f}>" for f in required} or None
            endpoints.append(
                {
                    "method": method.upper(),
                    "example": json.dumps(example, ensure_ascii=False) if example else None,
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "body": body_name,
                    "key": bool(op.get("security")),
                    "responses": responses,
                }
            )
    schemas = []
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        required = set(schema.get("required", []))
        fields = [
            {
                "name": field,
                "type": _type_of(prop),
                "required": field in required,
                "description": prop.get("description", ""),
                "constraints": ", ".join(f"{c}={prop[c]!r}" for c in _CONSTRAINTS if c in prop),
            }
            for field, prop in schema.get("properties", {}).items()
        ]
        schemas.append({"name": name, "fields": fields, "example": schema.get("example")})
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(STATIC), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return env.get_template("api-docs.html").render(
        info=spec.get("info", {}), endpoints=endpoints, schemas=schemas
    )
