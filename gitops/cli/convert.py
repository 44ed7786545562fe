"""``gitops convert``."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.cli.common import repo_option, workspace_of


@click.command()
@click.argument("ref", metavar="MODEL@REF")
@click.option("--to", "to", default="ct2", show_default=True, type=click.Choice(["ct2"]),
              help="Target format.")
@click.option("--quantization", default="int8", show_default=True,
              type=click.Choice(["int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                                 "bfloat16", "float32"]), help="Weight type of the converted model.")
@click.option("--alias", help="Also point this alias at the converted version.")
@click.option("--push", is_flag=True, help="Also dvc push the weights and git push the commit.")
@repo_option
def convert(ref: str, to: str, quantization: str, alias: str | None, push: bool, repo_dir: Path) -> None:
    """Convert a version to CTranslate2 (merging LoRA adapters first) and register it.

    The new version records the quantization and has the source version as its parent.

    \b
    Example:
      gitops convert review-autocomplete@v2 --to ct2 --quantization int8
    """
    from gitops import api
    from gitops.core.refs import parse_ref

    click.echo(f"Converting {ref} to {to} ({quantization}) ...", err=True)
    version = api.convert(workspace_of(repo_dir), ref, to=to, quantization=quantization, alias=alias, push=push)
    size = (version.metrics.get("size_bytes") or 0) / 1e6
    click.echo(f"Registered {parse_ref(ref).name}@{version.id} ({to}/{quantization}, parent {version.parent}, "
               f"{size:.1f} MB)" + (f"; {alias} -> {version.id}" if alias else ""))


def register(group: click.Group) -> None:
    group.add_command(convert)
