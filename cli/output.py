"""`--json` for listings and status commands: one JSON document on standard output for scripts."""

from __future__ import annotations

import json
from typing import Any

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text (for scripts)")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


def pick(model: Any, *fields: str) -> dict[str, Any]:
    """Chosen fields of a model, JSON-ready (enums as values, datetimes as ISO strings): listings
    name their fields, so nothing secret rides along by accident."""
    dumped = model.model_dump(mode="json", by_alias=False)
    return {f: dumped.get(f) for f in fields}
