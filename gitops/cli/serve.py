"""``gitops serve``: a thin command over :func:`gitops.serve.launch.serve`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from gitops.cli.common import repo_option, workspace_of

DEFAULT_SECRET_ENV = "GITOPS_DEPLOY_SECRET"


@click.command("serve")
@click.argument("ref", metavar="MODEL@ALIAS")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on, e.g. 0.0.0.0.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on, e.g. 8080.")
@click.option("--engine", type=click.Choice(["auto", "ct2", "hf"]), default="auto", show_default=True,
              help="auto: each version in its own format (ct2 on CTranslate2, hf/LoRA on transformers); "
                   "ct2: convert hf and LoRA versions to CTranslate2 int8 once; hf: transformers only.")
@click.option("--follow", is_flag=True,
              help="Poll the git remote and swap when the alias moves (instead of waiting for deploy webhooks).")
@click.option("--poll", "poll_s", default=30.0, show_default=True, type=float, metavar="SECONDS",
              help="With --follow: seconds between polls, e.g. 10.")
@click.option("--secret-env", default=DEFAULT_SECRET_ENV, show_default=True, metavar="NAME",
              help="Environment variable holding the deploy hook's HMAC secret; unset: no deploy hook.")
@click.option("--branch", default=None, metavar="BRANCH",
              help="Branch whose tip is served (origin/BRANCH when there is an origin); default: the current one.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the server keeps its worktree and delivery record (default: under .git/gitops/serve).")
@click.option("--threads", type=int, default=None, help="CPU threads for the engine, e.g. 4 (default: the engine's).")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]),
              help="Device to run on: cpu, or cuda (refused when no CUDA device is visible), e.g. --device cuda.")
@click.option("--hook-wait", "hook_wait_s", default=8.0, show_default=True, type=float, metavar="SECONDS",
              help="How long a deploy webhook waits for its load before answering 409 (retry later), e.g. 20.")
@click.option("--max-connections", default=1000, show_default=True, type=int, metavar="N",
              help="Open connections at most (kept below the file-descriptor limit); past it a new one replaces "
                   "the longest waiting for its request, or gets 503, e.g. 4000.")
@click.option("--head-timeout", "head_timeout_s", default=10.0, show_default=True, type=float, metavar="SECONDS",
              help="A connection must send a whole request head within this time, else it is closed, e.g. 5.")
@click.option("--body-timeout", "body_timeout_s", default=30.0, show_default=True, type=float, metavar="SECONDS",
              help="A request's body must arrive within this time of its head, else 408, e.g. 60.")
@repo_option
def serve_cmd(ref: str, host: str, port: int, engine: str, follow: bool, poll_s: float, secret_env: str,
              branch: str | None, state_dir: Path | None, threads: int | None, device: str, hook_wait_s: float,
              max_connections: int, head_timeout_s: float, body_timeout_s: float, repo_dir: Path) -> None:
    """Serve MODEL@ALIAS on an OpenAI-compatible endpoint and swap live when it moves.

    Serves the version the alias names at the tip of the followed branch (after git
    fetch), pulled through DVC and md5-checked; POST /v1/completions and
    /v1/chat/completions, GET /v1/models, /healthz, /readyz, /metrics. A prompt version
    runs on its pinned base: each request's text is a row, rendered (with retrieved
    examples) as 'gitops predict' renders it. A signed 'gitops deploy' webhook to /hooks/deploy (or,
    with --follow, a poll) loads the version the registry names at that commit and
    swaps it in without failing a request. Logs are JSON lines on stderr.

    \b
    Examples:
      GITOPS_DEPLOY_SECRET=... gitops serve review-autocomplete@production
      gitops serve review-autocomplete@production --follow --poll 10 --port 8080
      curl localhost:8000/v1/completions -H 'Content-Type: application/json' \\
           -d '{"model": "review-autocomplete", "prompt": "The chocolate tour was", "max_tokens": 16}'
      gitops serve ratings@production   # a prompt version: send a review, get its completion and label
    """
    import logging

    from gitops import api
    from gitops.serve.launch import ServeOptions
    from gitops.serve.logs import json_handler

    secret = os.environ.get(secret_env) or None
    options = ServeOptions(host=host, port=port, engine=engine, follow=follow, poll_s=poll_s, secret=secret,
                           state_dir=state_dir, branch=branch, threads=threads, device=device, hook_wait_s=hook_wait_s,
                           max_connections=max_connections, head_timeout_s=head_timeout_s,
                           body_timeout_s=body_timeout_s)
    logger = logging.getLogger("gitops.serve")
    logger.setLevel(logging.INFO)
    logger.addHandler(json_handler())

    def started(serving) -> None:
        source = serving.source
        click.echo(f"Serving {source.ref} ({serving.version} at {serving.tip[:12]} of {source.followed}) "
                   f"on {serving.url}/v1", err=True)
        if secret:
            click.echo(f"Deploy hook: POST {serving.url}/hooks/deploy (secret from ${secret_env})", err=True)
        else:
            click.echo(f"Deploy hook: off (${secret_env} is not set)", err=True)
        if follow:
            click.echo(f"Following {source.followed}: polling every {poll_s:g} s", err=True)

    api.serve(workspace_of(repo_dir), ref, options, on_start=started)


def register(group: click.Group) -> None:
    group.add_command(serve_cmd)
