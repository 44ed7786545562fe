"""Registry commands: init, show, model, register, alias, check, diff, history, codeowners."""

from __future__ import annotations

from pathlib import Path

import click

from gitops.cli.common import parse_pairs, repo_option, workspace_of
from gitops.cli.output import echo_json, print_registry, table


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--remote", help="DVC remote URL (s3://, gs://, azure://, ...) or directory (default: "
                               "DIRECTORY-dvc-storage beside it, recorded relative to the repository).")
@click.option("--remote-option", "remote_options", multiple=True, metavar="KEY=VALUE",
              help="A DVC setting of the remote, e.g. --remote-option endpointurl=https://minio.acme.dev "
                   "(repeatable). Credentials (access_key_id, secret_access_key, ...) go to .dvc/config.local, "
                   "which is never committed.")
@click.option("--github-repo", metavar="OWNER/NAME",
              help="The GitHub repository, written to gitops.yaml's github.repo (every GitHub command's "
                   "default), e.g. --github-repo acme/my-models.")
@click.option("--deploy-hook", metavar="URL",
              help="The serving endpoint's deploy webhook, written to gitops.yaml for production, e.g. "
                   "--deploy-hook https://serving.acme.dev/hooks/deploy (gitops serve's /hooks/deploy).")
@click.option("--toolkit", metavar="REQUIREMENT",
              help="What the workflows install (.github/gitops-requirements.txt), e.g. "
                   "'gitops-registry @ git+https://github.com/acme/gitops@COMMIT' (default: the gitops "
                   "installed here, pinned).")
def init(directory: Path, remote: str | None, remote_options: tuple[str, ...], github_repo: str | None,
         deploy_hook: str | None, toolkit: str | None) -> None:
    """Scaffold a GitOps repository: git, DVC with a remote, registry/, workflows, CODEOWNERS,
    train.yaml and the toolkit pin every workflow installs.

    \b
    Examples:
      gitops init my-models
      gitops init my-models --github-repo acme/my-models --remote s3://acme-models/dvc
      gitops init . --remote s3://models/dvc --remote-option endpointurl=https://minio.acme.dev
    """
    from gitops import api

    result = api.init(directory, remote=remote, repo=github_repo, remote_options=_options(remote_options),
                      toolkit=toolkit, deploy_hook=deploy_hook)
    click.echo(f"Initialised a GitOps repository in {result.root}")
    click.echo(f"  DVC remote: {result.remote}")
    if result.local_options:
        click.echo(f"  written to .dvc/config.local (never committed): {', '.join(result.local_options)}")
    click.echo(f"  workflows install: {result.toolkit} (.github/gitops-requirements.txt)")
    click.echo("  train.yaml: fine-tunes review-autocomplete@production on reviews@latest (its comments say how "
               "to register the first base)")
    click.echo(f"  committed {len(result.files)} files ({result.commit[:8]})")
    click.echo("Next: gitops model create NAME --protect production=@org/team")


def _options(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{pair}' must look like KEY=VALUE", param_hint="--remote-option")
        out[key.strip()] = value
    return out


@click.command()
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@repo_option
def show(target: str | None, as_json: bool, repo_dir: Path) -> None:
    """Show models and aliases; one model's versions (MODEL); one version (MODEL@REF).

    \b
    Examples:
      gitops show
      gitops show review-autocomplete
      gitops show review-autocomplete@production --json
    """
    from gitops import api

    data = api.show(workspace_of(repo_dir), target)
    if as_json:
        echo_json(data)
    elif target is None:
        print_registry(data)
    elif "@" in target:
        _print_version(data)
    else:
        _print_model(data)


def _print_model(data: dict) -> None:
    click.echo(f"{data['name']}: {data['description'] or '(no description)'}")
    if data["protected"]:
        click.echo("protected: " + "; ".join(f"{a} by {' '.join(o)}" for a, o in data["protected"].items()))
    rows = [[v["id"], _format_label(v), v["parent"] or "-",
             v["dataset"] or "-", (v["created_at"] or "")[:19], ", ".join(v["aliases"])] for v in data["versions"]]
    click.echo(table(rows, ["VERSION", "FORMAT", "PARENT", "DATA SET", "CREATED", "ALIASES"]))


def _format_label(v: dict) -> str:
    """``ct2/int8``; ``peft-lora on smollm2-135m-instruct@v1`` (an adapter, or a head, is nothing without its base)."""
    label = v["format"] + (f"/{v['quantization']}" if v["quantization"] else "")
    return f"{label} on {v['base_model']}" if v["format"] in ("peft-lora", "head") and v.get("base_model") else label


def _print_version(data: dict) -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        elif value not in (None, "", []):
            click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


@click.group()
def model() -> None:
    """Create and manage models."""


@model.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the model does, one line.")
@click.option("--task", default="text-generation", show_default=True,
              help="The model's task: completion (text-generation, ...) or classification (needs --classification).")
@click.option("--classification", "classification_file", type=click.Path(path_type=Path),
              help="YAML file with the classification block (input, label, labels, fallback, extract); "
                   "e.g. --task classification --classification task.yaml.")
@click.option("--owner", "owners", multiple=True, help="An owner of the model (@user, @org/team); repeatable.")
@click.option("--protect", multiple=True, metavar="ALIAS=OWNERS",
              help="Protect an alias: only these owners may approve moving it (repeatable).")
@repo_option
def model_create(name: str, description: str, task: str, classification_file: Path | None,
                 owners: tuple[str, ...], protect: tuple[str, ...], repo_dir: Path) -> None:
    """Create a model in the registry (and update CODEOWNERS for its protected aliases).

    A classification model gets the gate "accuracy not significantly worse than the baseline"
    (edit gates: in its model.yaml to change it).

    \b
    Examples:
      gitops model create review-autocomplete --protect production=@acme/mlops
      gitops model create ratings --task classification --classification task.yaml
    """
    from gitops import api

    created = api.create_model(workspace_of(repo_dir), name, description=description, task=task,
                               owners=list(owners), protect=parse_pairs(protect, "--protect"),
                               classification=classification_file)
    click.echo(f"Created model '{created.name}'" + (
        f" (protected: {', '.join(created.protected)})" if created.protected else ""))
    for gate in created.gates:
        from gitops.core.records import GATE_BOUNDS
        from gitops.eval.gates import describe_gate

        bound = next(b for b in GATE_BOUNDS if getattr(gate, b) is not None)
        click.echo(f"  gate: {describe_gate(gate.metric, bound, getattr(gate, bound), gate.significant)}")


@click.command("register")
@click.argument("model_name", metavar="MODEL")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="hf", show_default=True,
              type=click.Choice(["peft-lora", "hf", "ct2", "prompt"]), help="Format of the weights.")
@click.option("--parent", help="The version this one was derived from (v3).")
@click.option("--base-model", help="Base model the weights were trained from (path, hub id or MODEL@REF).")
@click.option("--dataset", help="Data set version it was trained on (reviews@v2).")
@click.option("--metrics", type=click.Path(path_type=Path), help="JSON or YAML file of metric name: number.")
@click.option("--quantization", help="Quantization of a ct2 version (int8, float16, ...).")
@click.option("--note", help="A note stored with the version.")
@click.option("--move", is_flag=True, help="Delete PATH once the version is committed.")
@click.option("--push", is_flag=True, help="Also dvc push the weights and git push the commit.")
@repo_option
def register_version(model_name: str, path: Path, fmt: str, parent: str | None, base_model: str | None,
             dataset: str | None, metrics: Path | None, quantization: str | None, note: str | None,
             move: bool, push: bool, repo_dir: Path) -> None:
    """Register a weights directory as the model's next version (tracked with DVC, committed).

    The same weights with the same lineage as an existing version are that version: nothing is
    committed, so re-running a register that was interrupted never makes a duplicate.

    \b
    Example:
      gitops register review-autocomplete out/merged --format hf --parent v2 --dataset reviews@v3
    """
    from gitops import api

    result = api.register(workspace_of(repo_dir), model_name, path, fmt=fmt, parent=parent, base_model=base_model,
                          dataset=dataset, metrics=metrics, quantization=quantization, note=note,
                          move=move, push=push)
    version, pushed = result.version, " and pushed" if push else ""
    if result.created:
        click.echo(f"Registered {model_name}@{version.id} ({version.format}, md5 {version.md5}){pushed}")
    else:
        click.echo(f"{model_name}@{version.id} already holds these weights with this lineage (md5 {version.md5}); "
                   f"nothing committed{pushed}")


@click.group()
def alias() -> None:
    """Move aliases (staging, production, ...) between versions."""


@alias.command("set")
@click.argument("model_name", metavar="MODEL")
@click.argument("alias_name", metavar="ALIAS")
@click.argument("version")
@click.option("--note", help="Why the alias moves; stored in the alias file and the commit.")
@repo_option
def alias_set(model_name: str, alias_name: str, version: str, note: str | None, repo_dir: Path) -> None:
    """Point ALIAS of MODEL at VERSION (a version id or 'latest') and commit.

    \b
    Example:
      gitops alias set review-autocomplete staging v3 --note "fresher data"
    """
    from gitops import api

    change = api.set_alias(workspace_of(repo_dir), model_name, alias_name, version, note=note)
    if not change.changed:
        click.echo(f"{model_name}@{alias_name} already points to {change.new}; nothing to do.")
        return
    click.echo(f"{model_name}@{alias_name}: {change.old or 'none'} -> {change.new} ({(change.commit or '')[:8]})")
    if change.protected:
        click.echo("This alias is protected: a code owner must approve the pull request that carries it.")


@alias.command("unset")
@click.argument("model_name", metavar="MODEL")
@click.argument("alias_name", metavar="ALIAS")
@repo_option
def alias_unset(model_name: str, alias_name: str, repo_dir: Path) -> None:
    """Remove ALIAS from MODEL and commit.

    \b
    Example:
      gitops alias unset review-autocomplete canary
    """
    from gitops import api

    change = api.unset_alias(workspace_of(repo_dir), model_name, alias_name)
    click.echo(f"{model_name}@{alias_name}: {change.old} -> none ({(change.commit or '')[:8]})")


@click.command()
@click.option("--base", help="Git ref to compare with: released versions there must be unchanged.")
@click.option("--remote", is_flag=True, help="Also check that the DVC remote holds every version's files.")
@repo_option
def check(base: str | None, remote: bool, repo_dir: Path) -> None:
    """Validate the whole registry; exit 1 listing every problem.

    \b
    Examples:
      gitops check
      gitops check --base origin/main --remote
    """
    from gitops import api
    from gitops.errors import RegistryError

    ws = workspace_of(repo_dir)
    problems = api.check(ws, base=base, remote=remote)
    if problems:
        raise RegistryError(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} found:", problems=problems)
    click.echo("The registry is valid." + (f" Released versions are unchanged since {base}." if base else ""))
    if base is not None:  # what is valid may still need approval: the same list `gitops approvals` judges
        changes = api.review_changes(ws, base).changes
        if changes:
            n = len(changes)
            click.echo(f"{n} change{'s' if n > 1 else ''} since {base} need{'s' if n == 1 else ''} approval "
                       "(gitops approvals):")
        for change in changes:
            click.echo(f"  {change.line()}")


@click.command()
@click.argument("base")
@click.argument("head", default="HEAD")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (what workflows read).")
@click.option("--github-output", is_flag=True,
              help="Also append matrix=, count=, new_versions= and alias_moves= (JSON) to $GITHUB_OUTPUT.")
@repo_option
def diff(base: str, head: str, as_json: bool, github_output: bool, repo_dir: Path) -> None:
    """Alias moves and new versions between two git refs (HEAD may be WORKTREE).

    \b
    Examples:
      gitops diff origin/main HEAD
      gitops diff origin/main HEAD --json
      gitops diff "$BASE_SHA" "$GITHUB_SHA" --github-output   # in a workflow step
    """
    from gitops import api

    result = api.diff(workspace_of(repo_dir), base, head)
    if github_output or as_json:
        data = result.to_dict()  # before anything is written: too many alias moves fails here
        if data["not_evaluated"]:
            total = len(data["evaluate"]) + len(data["not_evaluated"])
            click.echo(f"The evaluation matrix evaluates {len(data['evaluate'])} of {total:,} candidates (a GitHub "
                       f"matrix runs at most {len(data['evaluate'])} jobs); not evaluated: "
                       f"{data['not_evaluated'][0]} and {len(data['not_evaluated']) - 1:,} more new versions that "
                       "no alias points to", err=True)
    if github_output:
        _write_github_output(data)
    if as_json:
        echo_json(data)
        return
    if result.empty:
        click.echo(f"No registry changes between {base} and {head}.")
    for m in result.alias_moves:
        flag = " (protected)" if m.protected else ""
        click.echo(f"alias   {m.model}@{m.alias}: {m.old or 'none'} -> {m.new or 'none'}{flag}")
    for v in result.new_versions:
        click.echo(f"version {v.model}@{v.version} ({v.format}" + (f", parent {v.parent})" if v.parent else ")"))
    for name in result.new_models:
        click.echo(f"model   {name} (new)")


def _write_github_output(data: dict) -> None:
    """Step outputs for ``strategy.matrix`` and later steps: one JSON value per line."""
    import json
    import os

    from gitops.errors import RepoStateError

    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        raise RepoStateError("--github-output needs $GITHUB_OUTPUT (it is set inside GitHub Actions)")
    lines = {"matrix": json.dumps(data["evaluate"]), "count": str(len(data["evaluate"])),
             "new_versions": json.dumps([f"{v['model']}@{v['version']}" for v in data["new_versions"]]),
             "alias_moves": json.dumps(data["alias_moves"])}
    with open(target, "a", encoding="utf-8") as fh:
        fh.writelines(f"{k}={v}\n" for k, v in lines.items())


@click.command()
@click.argument("model_name", metavar="MODEL")
@click.argument("alias_name", metavar="ALIAS", required=False)
@click.option("-n", "--limit", type=int, help="Show at most this many moves.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@repo_option
def history(model_name: str, alias_name: str | None, limit: int | None, as_json: bool, repo_dir: Path) -> None:
    """Who moved which alias to which version, when, in which commit and PR (from git log).

    \b
    Examples:
      gitops history review-autocomplete
      gitops history review-autocomplete production
    """
    from dataclasses import asdict

    from gitops import api

    events = api.history(workspace_of(repo_dir), model_name, alias_name, limit)
    if as_json:
        echo_json([asdict(e) for e in events])
        return
    if not events:
        click.echo(f"No alias of '{model_name}' has moved yet.")
        return
    rows = [[e.date[:19].replace("T", " "), e.alias, f"{e.old or 'none'} -> {e.new or 'none'}"
             + (f" (peft-lora on {e.new_base})" if e.new_base else ""), e.author,
             e.commit[:8], f"#{e.pr}" if e.pr else "-"] for e in events]
    click.echo(table(rows, ["WHEN", "ALIAS", "MOVE", "BY", "COMMIT", "PR"]))


@click.command()
@click.option("--check", "mode", flag_value="check", help="Exit 1 if .github/CODEOWNERS is out of date.")
@click.option("--write", "mode", flag_value="write", help="Rewrite .github/CODEOWNERS from the registry.")
@repo_option
def codeowners(mode: str | None, repo_dir: Path) -> None:
    """Generate .github/CODEOWNERS from the protected aliases (prints it without an option).

    \b
    Examples:
      gitops codeowners --check
      gitops codeowners --write && git commit -am "CODEOWNERS"
    """
    from gitops import api
    from gitops.errors import RegistryError

    result = api.codeowners(workspace_of(repo_dir), write=mode == "write")
    if mode is None:
        click.echo(result.text, nl=False)
    elif mode == "check" and not result.in_sync:
        raise RegistryError(f"{result.path} is out of date; run 'gitops codeowners --write'")
    elif mode == "check":
        click.echo(f"{result.path} is up to date.")
    else:
        click.echo(f"Wrote {result.path}." if result.written else f"{result.path} was already up to date.")


def register(group: click.Group) -> None:
    for command in (init, show, model, register_version, alias, check, diff, history, codeowners):
        group.add_command(command)
