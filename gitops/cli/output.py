"""Small printing helpers shared by the command modules (the only layer that prints)."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def table(rows: list[list[str]], headers: list[str]) -> str:
    """A plain aligned text table."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(c))) for w, c in zip(widths, row)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def print_registry(data: dict) -> None:
    """The registry overview (what ``gitops show`` and the demo print): models, then data sets."""
    if not data["models"] and not data["datasets"]:
        click.echo("The registry is empty. Create a model: gitops model create NAME")
        return
    if data["models"]:
        rows = [[m["name"], str(m["versions_count"]), m["latest"] or "-", _aliases_cell(m)] for m in data["models"]]
        click.echo(table(rows, ["MODEL", "VERSIONS", "LATEST", "ALIASES"]))
    if data["datasets"]:
        click.echo("")
        rows = [[d["name"], str(d["versions_count"]), d["latest"] or "-", str(d["rows"])] for d in data["datasets"]]
        click.echo(table(rows, ["DATA SET", "VERSIONS", "LATEST", "ROWS"]))


def _aliases_cell(model: dict, shown: int = 4) -> str:
    """Protected aliases first, then the rest; a long tail is counted, not printed."""
    names = sorted(model["aliases"], key=lambda a: (a not in model["protected"], a not in ("staging",), a))
    cell = ", ".join(f"{a}={model['aliases'][a]}" for a in names[:shown])
    return (cell + (f", +{len(names) - shown} more" if len(names) > shown else "")) or "-"
