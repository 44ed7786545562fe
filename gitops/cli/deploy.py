"""``gitops deploy`` and ``gitops notify``: thin commands over :mod:`gitops.deploy`."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.cli.common import repo_option, workspace_of
from gitops.cli.output import echo_json


def _describe(r) -> str:
    moved = f"{r.model}@{r.alias}: {r.previous or '(new)'} -> {r.version}"
    if not r.sent:
        return f"would POST {moved} to hook '{r.hook}' ({r.host})"
    if r.ok:
        said = f" {r.answer}" if r.answer else ""
        return f"delivered {moved} to hook '{r.hook}' ({r.host}, HTTP {r.status}{said}, {r.attempts} attempt(s))"
    return f"FAILED {moved}: {r.error}"


@click.command("deploy")
@click.option("--base", required=True, metavar="REF",
              help="Git ref before the change, e.g. the push's 'before' commit.")
@click.option("--head", required=True, metavar="REF", help="Git ref after the change, e.g. the pushed commit.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent (payloads included); send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@repo_option
def deploy_cmd(base: str, head: str, dry_run: bool, as_json: bool, repo_dir: Path) -> None:
    """Send signed deploy webhooks for hooked aliases that moved between two refs.

    Hooks are listed under deploy.hooks in gitops.yaml; each names the environment
    variable holding its HMAC secret. Failed deliveries are retried with backoff.

    \b
    Examples:
      gitops deploy --base HEAD~1 --head HEAD --dry-run
      GITOPS_DEPLOY_SECRET=... gitops deploy --base "$BEFORE" --head "$SHA"
    """
    from gitops import api
    from gitops.core.refs import parse_ref
    from gitops.deploy import DeployFailed
    from gitops.errors import GitopsError

    def show(r) -> None:
        if not as_json:
            click.echo(_describe(r), err=r.error is not None)

    ws = workspace_of(repo_dir)
    try:
        result = api.deploy(ws, base, head, dry_run=dry_run, on_result=show)
    except DeployFailed as exc:
        if as_json:
            echo_json(_as_dict(exc.result))
        raise
    if as_json:
        echo_json(_as_dict(result))
        return
    if dry_run:
        for r, payload in zip(result.deliveries, result.payloads):
            click.echo(_describe(r))
            echo_json(payload)
    for name in result.unhooked:
        click.echo(f"{name} moved; no deploy hook listens to it")
    for name in result.unprotected:
        click.echo(f"{name} moved, but it is not protected and no deploy hook names model "
                   f"'{parse_ref(name).name}': hooks without 'models:' act on protected aliases only")
    for name in result.removed:
        click.echo(f"{name} was removed; nothing to deploy")
    if not result.deliveries:
        click.echo("No hooked alias moved: nothing to deploy.")
    elif not dry_run:
        lines = [f"Deployed {r.model}@{r.alias} = {r.version} (hook {r.hook})" for r in result.deliveries]
        try:  # the deploy is done: a chat failure is a warning, not a failed deploy
            click.echo(api.notify(ws, "\n".join(lines), event="deploy").reason)
        except GitopsError as exc:
            click.echo(f"Warning: notification not sent: {exc}", err=True)


def _as_dict(result) -> dict:
    from dataclasses import asdict

    return {"base": result.base, "head": result.head, "dry_run": result.dry_run,
            "deliveries": [asdict(r) for r in result.deliveries], "payloads": result.payloads,
            "unhooked": result.unhooked, "unprotected": result.unprotected, "removed": result.removed}


@click.command("notify")
@click.option("--text", required=True, metavar="TEXT", help="The message to post.")
@repo_option
def notify_cmd(text: str, repo_dir: Path) -> None:
    """Post a message to the chat webhook configured in gitops.yaml.

    The webhook URL is read from the environment variable named by
    notify.slack_webhook_env; without one, nothing is sent and the reason is printed.

    \b
    Example:
      SLACK_WEBHOOK_URL=https://hooks.slack.com/services/... gitops notify --text "v3 is live"
    """
    from gitops import api

    click.echo(api.notify(workspace_of(repo_dir), text).reason)


def register(group: click.Group) -> None:
    group.add_command(deploy_cmd)
    group.add_command(notify_cmd)
