"""``docs/reference.md``: every key of every file gitops reads, and every environment variable.

Generated from the validation specs, so the reference cannot drift from what is checked: the
:class:`~gitops.validation.Record` specs give their keys' types and defaults (and carry help and an
example), and the files checked by hand have a table of :class:`~gitops.validation.Key` beside their
checker (``settings.REFERENCE``, ``schema.MODEL_REFERENCE``, ...), which tests/test_reference.py
holds to what the checker accepts. The environment variables are listed here; the same test fails
when the code reads one this list lacks.

    gitops reference            # rewrite docs/reference.md (a hidden development command)
    gitops reference --check    # exit 1 when docs/reference.md differs (what the test checks)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gitops.validation import REQUIRED, Field, Key, Record, describe

DOC = Path(__file__).resolve().parents[1] / "docs" / "reference.md"


@dataclass(frozen=True)
class EnvVar:
    """An environment variable gitops reads: its name, who reads it, what it does."""

    name: str
    read_by: str
    meaning: str


# Every variable the toolkit reads by a fixed name (tests/test_reference.py scans the code for reads),
# then the names a setting chooses (their documented defaults and conventions).
ENVIRONMENT = (
    EnvVar("GITHUB_TOKEN", "promote --pr, approvals, report --post",
           "The token for GitHub's API (in Actions: `secrets.GITHUB_TOKEN` or an App token)."),
    EnvVar("GITHUB_REPOSITORY", "every GitHub command; deploy",
           "OWNER/NAME, the last fallback of `--github-repo` (after gitops.yaml's `github.repo`); the "
           "`repository` of a deploy payload (before `github.repo`). Set by Actions."),
    EnvVar("GITHUB_API_URL", "every GitHub command", "The API's base URL (default https://api.github.com). "
           "Set by Actions; GitHub Enterprise or the test emulator."),
    EnvVar("GITOPS_GITHUB_RETRIES", "every GitHub command", "Retries of a 5xx or rate-limited answer "
           "(a whole number; default PyGithub's own policy)."),
    EnvVar("GITHUB_STEP_SUMMARY", "report --post", "Set by Actions: the report is appended to the job's summary."),
    EnvVar("GITHUB_OUTPUT", "diff --github-output", "Set by Actions: the step outputs (the evaluation matrix)."),
    EnvVar("GITOPS_CACHE_DIR", "every command that loads a model",
           "The machine-local model cache (the toy base, dequantized GGUFs, merged adapters); "
           "default `~/.cache/gitops`."),
    EnvVar("WORLD_SIZE", "train (set by `accelerate launch` or `torchrun`)",
           "More than 1: a multi-process run (a GGUF base must then be registered first)."),
    EnvVar("GIT_DIR", "every command", "With the three below, git's own discovery variables: when one is "
           "set, gitops asks git where the work tree is instead of looking for `.git` itself."),
    EnvVar("GIT_WORK_TREE", "every command", "See GIT_DIR."),
    EnvVar("GIT_CEILING_DIRECTORIES", "every command", "See GIT_DIR."),
    EnvVar("GIT_DISCOVERY_ACROSS_FILESYSTEM", "every command", "See GIT_DIR."),
    EnvVar("GITOPS_DEPLOY_SECRET", "deploy; serve (`--secret-env`)",
           "The deploy webhook's HMAC secret: the default name of a hook's `secret_env` and of serve's "
           "`--secret-env`."),
    EnvVar("GITOPS_DEMO_DEPLOY_SECRET", "demo", "The demo's own deploy secret, set and read inside its process."),
    EnvVar("SLACK_WEBHOOK_URL", "deploy, report --post (notify)",
           "Conventional name for `notify.slack_webhook_env`: the chat webhook URL (no default: unset, no message)."),
    EnvVar("GITOPS_JUDGE_TOKEN", "eval (judge)", "Conventional name for `eval.judge.token_env`: the judge's bearer "
           "token (no default)."),
)
# Variables and secrets the scaffolded workflows read (set in the repository's settings, not read by gitops).
WORKFLOW_ENVIRONMENT = (
    EnvVar("GITOPS_PR_TOKEN", "train, convert (a secret)", "A token whose pushes and pull requests start "
           "workflows (the default GITHUB_TOKEN's do not); falls back to GITHUB_TOKEN."),
    EnvVar("GITOPS_READ_ORG_TOKEN", "registry-check (a secret)",
           "A token with `read:org`, so `gitops approvals` can expand teams."),
    EnvVar("GITOPS_DEPLOY_SECRET", "deploy (a secret of the `production` environment)", "The webhook's HMAC key."),
    EnvVar("SLACK_WEBHOOK_URL", "deploy, evaluate (a secret)", "Where notifications go, when gitops.yaml names it."),
)
COMPLETION = """\
Click writes the completion script for bash, zsh and fish; load it from your shell's startup file:

```bash
eval "$(_GITOPS_COMPLETE=bash_source gitops)"            # ~/.bashrc
eval "$(_GITOPS_COMPLETE=zsh_source gitops)"             # ~/.zshrc
_GITOPS_COMPLETE=fish_source gitops | source             # ~/.config/fish/completions/gitops.fish
```

It completes commands and options (`gitops pro<TAB>` offers `promote` and `prompt`). For a faster
shell start, write the script to a file once (`_GITOPS_COMPLETE=bash_source gitops > ~/.gitops-complete.bash`)
and source that file instead.
"""


@dataclass(frozen=True)
class Section:
    title: str
    intro: str
    rows: list[tuple[str, str, str, str, str]]  # key, type, default, example, meaning


def inline(value: Any) -> str:
    """A value as one line of YAML (flow style; a string with line breaks double-quoted, escaped)."""
    if isinstance(value, str) and "\n" in value:
        return json.dumps(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def key_rows(keys: tuple[Key, ...] | list[Key]) -> list[tuple[str, str, str, str, str]]:
    return [(k.path, k.type, "required" if k.default is REQUIRED else str(k.default),
             "" if k.example is None else inline(k.example), k.meaning) for k in keys]


def field_row(path: str, f: Field) -> tuple[str, str, str, str, str]:
    default = "required" if f.default is REQUIRED else "none" if f.default is None else f"`{inline(f.default)}`"
    return path, describe(f.spec), default, "" if f.example is None else inline(f.example), f.help


def record_rows(spec: Record, prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    return [field_row(prefix + path, f) for path, f in spec.leaves()]


def sections() -> list[Section]:
    from gitops.core import promptspec, schema, settings, task
    from gitops.eval import results
    from gitops.train import train_config

    model: list[tuple[str, str, str, str, str]] = []
    for row in key_rows(schema.MODEL_REFERENCE):
        model.append(row)
        if row[0] == "classification":
            model += key_rows(task.CLASSIFICATION_REFERENCE)
    model += record_rows(schema.VERSION_SPEC, "versions.<vN>.")
    gate_fields = {f.name: f for f in dataclasses.fields(results.GateResult)}
    gate_spec = results.result_spec(results.GateResult)
    gates = []
    for name, (example, meaning) in results.GATE_RESULT_REFERENCE.items():
        f = gate_fields[name]
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = "required" if required else "none" if f.default is None else f"`{inline(f.default)}`"
        gates.append((f"gates[].{name}", describe(gate_spec.fields[name].spec), default, inline(example), meaning))
    return [
        Section("`gitops.yaml`", "Repository settings, at the top of the repository (`gitops init` writes "
                "one). Checked by `gitops check` and by every command that reads it.", key_rows(settings.REFERENCE)),
        Section("`registry/<model>/model.yaml`", "A model: its task, owners, protected aliases, gates and "
                "versions (`gitops model create` writes it; versions are appended, never changed).", model),
        Section("`registry/<model>/aliases/<alias>.yaml`", "One file per alias, so CODEOWNERS can guard "
                "one alias (`gitops alias set`, `gitops promote`).", record_rows(schema.ALIAS_SPEC)),
        Section("`registry/datasets/<name>.yaml`", "A data set: its schema, split rule and versions "
                "(`gitops dataset create`; `gitops ingest` appends a version).",
                key_rows(schema.DATASET_REFERENCE) + record_rows(schema.DATASET_VERSION_SPEC, "versions.<vN>.")),
        Section("Train config (`gitops train CONFIG`)", "Any file name; every key can be overridden with "
                "`--set KEY=VALUE`. Details: [train-config.md](train-config.md).", record_rows(train_config.SCHEMA)),
        Section("Prompt config (`gitops prompt add MODEL --config FILE`)", "A prompt version: a base version, "
                "a template and a retrieval rule. Details: [tasks.md](tasks.md).",
                key_rows(promptspec.PROMPT_REFERENCE)),
        Section("Evaluation results: `gates`", "Each entry of a results document's `gates` (what `gitops eval` "
                "writes; one per bound of each gate of `model.yaml`). The whole document: "
                "[results-schema.md](results-schema.md).", gates),
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text else ""


def render() -> str:
    out = ["# Reference: every file gitops reads, every environment variable", "",
           "<!-- Generated by `gitops reference` from the validation specs; do not edit by hand. "
           "tests/test_reference.py fails when this file and the specs differ. -->", "",
           "A key's path is dotted; `[]` marks each item of a list and `<vN>` a mapping's own keys. "
           "A bad value is one sentence naming the file, the line and the key.", ""]
    for section in sections():
        out += [f"## {section.title}", "", section.intro, "", "| key | type | default | example | meaning |",
                "|---|---|---|---|---|"]
        out += [f"| `{_cell(k)}` | {_cell(t)} | {_cell(d)} | {_code(e)} | {_cell(m)} |"
                for k, t, d, e, m in section.rows]
        out.append("")
    out += ["## Environment variables", "", "What gitops reads from the environment. Secrets are only ever "
            "read from variables whose names gitops.yaml or an option gives, never from files.", "",
            "| variable | read by | meaning |", "|---|---|---|"]
    out += [f"| `{v.name}` | {_cell(v.read_by)} | {_cell(v.meaning)} |" for v in ENVIRONMENT]
    out += ["", "The scaffolded workflows read these repository variables and secrets "
            "([workflows.md](workflows.md)):", "",
            "| name | read by | meaning |", "|---|---|---|"]
    out += [f"| `{v.name}` | {_cell(v.read_by)} | {_cell(v.meaning)} |" for v in WORKFLOW_ENVIRONMENT]
    out += ["", "DVC reads its remote's credentials itself (for example `AWS_ACCESS_KEY_ID`, or "
            "`.dvc/config.local`); see DVC's documentation of your remote.", "", "## Shell completion", "",
            COMPLETION]
    return "\n".join(out)


def differs(path: Path = DOC) -> bool:
    """Whether ``path`` is not what :func:`render` writes."""
    return not path.exists() or path.read_text(encoding="utf-8") != render()
