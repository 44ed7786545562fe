"""``gitops prompt``: prompt versions (a base model version, a template, retrieval; no weights)."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.cli.common import repo_option, workspace_of


@click.group()
def prompt() -> None:
    """Prompt versions: zero-shot and few-shot variants of a model, stored as YAML in git."""


@prompt.command("add")
@click.argument("model_name", metavar="MODEL")
@click.option("--config", "config", required=True, type=click.Path(path_type=Path),
              help="The prompt config (base, template, retrieval, generation), e.g. --config few-shot.yaml.")
@click.option("--note", help="A note stored with the version, e.g. --note 'bm25 k=3'.")
@repo_option
def prompt_add(model_name: str, config: Path, note: str | None, repo_dir: Path) -> None:
    """Add a prompt config as MODEL's next version: its base pinned to a version and md5, committed.

    The same config added twice is one version (nothing is committed the second time).

    \b
    Example:
      gitops prompt add ratings --config few-shot-bm25.yaml --note "bm25 k=3"
    """
    from gitops import api

    result = api.add_prompt(workspace_of(repo_dir), model_name, config, note=note)
    v = result.version
    if result.created:
        click.echo(f"Added {model_name}@{v.id} (prompt on {v.base_model}, config {v.config_hash})")
    else:
        click.echo(f"{model_name}@{v.id} already holds this prompt config ({v.config_hash}); nothing committed")


def register(group: click.Group) -> None:
    group.add_command(prompt)
