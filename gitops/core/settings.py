"""``gitops.yaml``: repository settings (GitHub repo, runner labels, admins, deploy hooks, notify).

Shape of the hook sections (every key but ``name`` and ``url`` optional)::

    deploy:
      hooks:
        - name: prod-endpoint
          url: https://deploy.example.com/hooks/gitops
          models: [review-autocomplete]      # default: every model's PROTECTED aliases only
          aliases: [production]              # default: [production]
          secret_env: GITOPS_DEPLOY_SECRET   # the NAME of the env var holding the HMAC secret
          payload: {model: "{model}", version: "{version}"}   # default: the full payload
          timeout_s: 10
          retries: 4

(``notify:`` and ``eval.judge:`` are in docs/reference.md, as is every key.) Each section is a
:func:`gitops.validation.strict` dataclass: its fields declare the checks, the messages are the file's.

Secrets never live in the file: a hook names the environment variable that holds its secret, and a
key that looks like an inline secret (``secret:``) is refused with a pointer to ``secret_env``.
The whole file is read and checked here, once per Workspace, so every problem in it is reported
together (``gitops check``) and the deploy and notify code receive parsed settings.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gitops import yamlio
from gitops.adapters.github import repo_problem
from gitops.core import refs
from gitops.core.schema import owners_of
from gitops.errors import ConfigError, RegistryError, shown
from gitops.validation import REQUIRED, Check, Key, ListOf, Problems, checked_field, record_of, strict, validate
from gitops.yamlio import LineMap, plain

SETTINGS_FILE = "gitops.yaml"
TOP_KEYS = ("github", "runners", "admins", "admin_paths", "deploy", "notify", "eval")
# What the admins own whatever gitops.yaml says (the generated CODEOWNERS gives them these and the
# ``admin_paths``; ``gitops approvals`` requires an admin's approval of a change to any): the workflows
# and any local action under .github/, CODEOWNERS wherever GitHub reads it, the settings (deploy hooks
# among them), and DVC's configuration (where weights and data go, with the runners' credentials).
MACHINERY_PATHS = ("/.github/", "/CODEOWNERS", "/docs/CODEOWNERS", "/gitops.yaml", "/.dvc/", "/.dvcignore")
MAX_ADMIN_PATHS = 64
HOOK_KEYS = ("name", "url", "models", "aliases", "secret_env", "payload", "timeout_s", "retries")
NOTIFY_KEYS = ("slack_webhook_env", "on")
NOTIFY_EVENTS = ("deploy", "report")
# The placeholders a payload template may use; each is documented in docs/deploy-webhooks.md.
PLACEHOLDERS = ("event", "model", "alias", "version", "previous_version", "format", "quantization", "md5",
                "dvc_file", "weights_path", "base_model", "commit", "base_commit", "repository", "protected",
                "delivery")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOOK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_SECRET_ENV = "GITOPS_DEPLOY_SECRET"
MAX_URL = 2048
JUDGE_KEYS = ("endpoint", "model", "token_env", "samples", "timeout_s")
MAX_JUDGE_MODEL = 200
MAX_JUDGE_SAMPLES = 500  # the judge asks twice per sample: 1,000 requests at most

# What parse accepts, for docs/reference.md (tests/test_reference.py holds the table to the checker).
REFERENCE = (
    Key("github", "mapping", "none", None, "The GitHub repository (below)."),
    Key("github.repo", "string", "none", "acme/my-models",
        "OWNER/NAME: the default of every GitHub command's `--github-repo` (then `$GITHUB_REPOSITORY`)."),
    Key("runners", "mapping", "both below", None, "The labels of the two self-hosted runner pools."),
    Key("runners.gpu", "list of strings", "`[self-hosted, gpu, ephemeral]`", ["self-hosted", "gpu", "ephemeral"],
        "Where pull requests are evaluated (their code runs there)."),
    Key("runners.trusted", "list of strings", "`[self-hosted, gpu, trusted]`", ["self-hosted", "gpu", "trusted"],
        "Where train and convert run, holding write credentials; a label the other pool lacks."),
    Key("admins", "owner or list of owners", "`[]`: every protected alias's owners", ["@acme/mlops"],
        "Who owns the machinery (.github/, gitops.yaml, protected/gates lines)."),
    Key("admin_paths", "list of strings", "`[]`", ["/scripts/deploy/"],
        f"More CODEOWNERS paths only the admins may change (at most {MAX_ADMIN_PATHS})."),
    Key("deploy", "mapping", "none", None, "Deploy webhooks (below)."),
    Key("deploy.hooks", "list of hooks", "`[]`", None, "Fired by `gitops deploy` when a listed alias moves."),
    Key("deploy.hooks[].name", "string", REQUIRED, "prod-endpoint", "Letters, digits, `.`, `_`, `-`; unique."),
    Key("deploy.hooks[].url", "string", REQUIRED, "https://deploy.example.com/hooks/gitops",
        "Where to POST (http or https; no password in it)."),
    Key("deploy.hooks[].models", "list of strings", "every model", ["review-autocomplete"], "Models it listens to."),
    Key("deploy.hooks[].aliases", "list of strings", "`[production]`", ["production"], "Aliases it listens to."),
    Key("deploy.hooks[].secret_env", "string", f"`{DEFAULT_SECRET_ENV}`", DEFAULT_SECRET_ENV,
        "The NAME of the environment variable holding the HMAC secret (never the secret)."),
    Key("deploy.hooks[].payload", "mapping (JSON template)", "the full payload", {"model": "{model}"},
        "The body to send, with `{placeholders}` (docs/deploy-webhooks.md)."),
    Key("deploy.hooks[].timeout_s", "number, 0.1 to 300", "10", 10, "Seconds per attempt."),
    Key("deploy.hooks[].retries", "integer, 0 to 20", "4", 4, "Attempts after the first."),
    Key("notify", "mapping", "none", None, "Chat notifications (below)."),
    Key("notify.slack_webhook_env", "string", "none: no notification", "SLACK_WEBHOOK_URL",
        "The NAME of the environment variable holding a Slack-compatible webhook URL."),
    Key("notify.on", "list of strings", "`[deploy, report]`", ["deploy"], "Events that notify: deploy, report."),
    Key("eval", "mapping", "none", None, "Evaluation settings (below)."),
    Key("eval.judge", "mapping", "none: no judge", None, "An LLM judge for `gitops eval` (docs/eval.md#judge)."),
    Key("eval.judge.endpoint", "string", REQUIRED, "http://judge.internal:8000",
        "An OpenAI-compatible server; it receives holdout text."),
    Key("eval.judge.model", "string", REQUIRED, "judge@production", "The judge's model name there."),
    Key("eval.judge.token_env", "string", "none", "GITOPS_JUDGE_TOKEN",
        "The NAME of the environment variable holding a bearer token."),
    Key("eval.judge.samples", f"integer, 1 to {MAX_JUDGE_SAMPLES}", "the evaluation's `--samples`", 16,
        "Samples judged (each in both orders)."),
    Key("eval.judge.timeout_s", "number, 0.1 to 600", "60", 60, "Seconds per request."),
)

DEFAULT_TEXT = """\
# gitops repository settings. See the README for every key.
github:
  {repo_line}  # owner/name: where promote --pr, approvals and report --post go (then GITHUB_REPOSITORY)
runners:  # the labels the workflows run on (docs/workflows.md: runner groups, ephemeral runners)
  gpu: [self-hosted, gpu, ephemeral]     # evaluates pull requests (their code): fresh for every job
  trusted: [self-hosted, gpu, trusted]   # trains and converts, holding write credentials
# People who own the GitOps machinery itself (.github/, gitops.yaml) in CODEOWNERS; a change to
# it, or to a model's protected/gates settings, needs one of them. Empty: the owners of every
# protected alias.
admins: []
# More paths only the admins may change (CODEOWNERS patterns), e.g. [/scripts/deploy/].
admin_paths: []
# Deploy webhooks fired when an alias listed here moves on the default branch.
deploy:
  hooks:{hooks}
"""


# --- the sections, as specs (gitops.validation); the sentences are the file's own ---------------

def _env_rule(why: str, nullable: bool = False) -> Check:  # the NAME of an environment variable, never its value
    return Check(lambda v: None if isinstance(v, str) and ENV_NAME_RE.fullmatch(v) else why, nullable=nullable)


def _bounded(low: float, high: float, integer: bool = False) -> Check:
    """A number from ``low`` to ``high`` (a whole one when ``integer``); held as an int or a float."""
    def check(v: Any) -> str | None:
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok or not low <= v <= high:
            return f"must be {'a whole number' if integer else 'a number'} from {low:g} to {high:g}"
        return None
    return Check(check, label=f"{'integer' if integer else 'number'}, {low:g} to {high:g}",
                convert=int if integer else float)


def _names(check: Callable[[str], str | None], nullable: bool = False) -> Check:
    def whys(v: Any) -> str | list[str] | None:
        v = [v] if isinstance(v, str) else v
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            return " must be a non-empty list of names"
        return [f": {problem}" for x in v if (problem := check(x))]
    return Check(whys, say="{path}{why}", label="list of strings", convert=_listed, nullable=nullable)


def _listed(v: Any) -> list:
    return [v] if isinstance(v, str) else list(v)


def _payload_problems(v: Any) -> list[str]:
    shape = [] if isinstance(v, dict) else [" must be a mapping (a JSON object template)"]
    return shape + [f": {problem}" for problem in _template_problems(v)]


_YAML = {"unknown": "{record}: unknown key '{key}' (allowed: {allowed})",
         "missing": "{record} is missing the required key '{key}'"}
_NEVER = "{{record}}: never write a {0} into gitops.yaml; name its environment variable with {0}_env instead"


@strict(error=ConfigError, not_mapping="{path} must be a mapping with at least name and url", null_is_empty=False,
        forbidden={"secret": _NEVER.format("secret")}, **_YAML)
class Hook:
    """One deploy webhook: where to POST, for which model aliases, signed with which secret."""

    name: str = checked_field(Check(lambda v: None if isinstance(v, str) and HOOK_NAME_RE.fullmatch(v)
                                   else "must be letters, digits, '.', '_' or '-'"))
    url: str = checked_field(Check(lambda v: url_problem(v)))
    # None: every model, for its protected aliases only
    models: list[str] | None = checked_field(_names(refs.name_problem, nullable=True), default=None)
    aliases: list[str] = checked_field(_names(refs.alias_problem), default_factory=lambda: ["production"])
    secret_env: str = checked_field(_env_rule(f"must be an environment variable name like {DEFAULT_SECRET_ENV}"),
                                    default=DEFAULT_SECRET_ENV)
    payload: Any = checked_field(Check(_payload_problems, say="{path}{why}", convert=plain), default=None)  # None: full
    timeout_s: float = checked_field(_bounded(0.1, 300), default=10.0)
    retries: int = checked_field(_bounded(0, 20, integer=True), default=4)  # retries after the first attempt

    def wants(self, model: str, alias: str, protected: bool = False) -> bool:
        """Whether a move of ``model``'s ``alias`` fires this hook. A hook that names no models acts
        only on protected aliases: anyone may add a model whose ``production`` nobody protects (no
        approval needed), and that must not reach the endpoint a protected production deploys to."""
        if alias not in self.aliases:
            return False
        return model in self.models if self.models is not None else protected

    @property
    def host(self) -> str:
        """The URL's host (and port): what messages show, since a URL path may carry a token."""
        return urlparse(self.url).netloc.rsplit("@", 1)[-1]


def _events(v: Any) -> str | None:
    v = [v] if isinstance(v, str) else v
    return None if isinstance(v, list) and all(e in NOTIFY_EVENTS for e in v) else \
        f"must be a list of: {', '.join(NOTIFY_EVENTS)}"


@strict(error=ConfigError, not_mapping="notify must be a mapping like {{slack_webhook_env: SLACK_WEBHOOK_URL}}",
        unknown="notify: unknown key '{key}' (allowed: {allowed})")
class NotifyConfig:
    """Where chat notifications go: the env var holding a Slack-compatible incoming-webhook URL."""

    slack_webhook_env: str | None = checked_field(_env_rule(
        "must be the NAME of an environment variable, e.g. SLACK_WEBHOOK_URL", nullable=True), default=None)
    on: list[str] = checked_field(Check(_events, convert=_listed),
                                  default_factory=lambda: list(NOTIFY_EVENTS))


_DEPLOY_SHAPE = "deploy must be a mapping with one key, hooks: [...]"


@strict(error=ConfigError, not_mapping=_DEPLOY_SHAPE, closed=True)
class DeployConfig:
    hooks: list[Hook] = checked_field(ListOf(record_of(Hook), nullable=True, each=True,
                                             say="{path} must be a list of hooks"), default_factory=list)

    def __post_init__(self) -> None:
        if self.hooks is None:  # `hooks:` written empty
            self.hooks = []

    def hooks_for(self, model: str, alias: str, protected: bool = False) -> list[Hook]:
        return [h for h in self.hooks if h.wants(model, alias, protected)]


@strict(error=ConfigError, not_mapping="{path} must be a mapping like {{endpoint: URL, model: NAME}}",
        forbidden={"token": _NEVER.format("token")}, **_YAML)
class JudgeConfig:
    """An LLM judge for ``gitops eval`` (the ``eval.judge`` section): an OpenAI-compatible server
    that is shown the holdout's prompts and both models' completions."""

    endpoint: str = checked_field(Check(lambda v: url_problem(v, "token_env")))
    model: str = checked_field(Check(lambda v: judge_model_problem(v)))
    token_env: str | None = checked_field(_env_rule(  # the NAME of the env var holding a bearer token
        "must be the NAME of an environment variable, e.g. GITOPS_JUDGE_TOKEN", nullable=True), default=None)
    samples: int | None = checked_field(_bounded(1, MAX_JUDGE_SAMPLES, integer=True), default=None)  # None: --samples
    timeout_s: float = checked_field(_bounded(0.1, 600), default=60.0)

    @property
    def host(self) -> str:
        """The endpoint's host (and port): what messages and results show, never the full URL."""
        return urlparse(self.endpoint).netloc.rsplit("@", 1)[-1]


_EVAL_SHAPE = "eval must be a mapping with one key, judge: {{endpoint: URL, model: NAME}}"


@strict(error=ConfigError, not_mapping=_EVAL_SHAPE, closed=True)
class EvalConfig:
    """The ``eval:`` section (today only ``judge:``)."""

    judge: JudgeConfig | None = None


_GITHUB_SHAPE = "github must be a mapping with 'repo: owner/name'"


@strict(error=ConfigError, not_mapping=_GITHUB_SHAPE, closed=True)
class GithubConfig:
    repo: str | None = checked_field(Check(repo_problem, say="{path} '{shown}' {why}", nullable=True), default=None)


_RUNNERS_SHAPE = ("runners must be a mapping like {gpu: [self-hosted, gpu, ephemeral], "
                  "trusted: [self-hosted, gpu, trusted]}")
_RUNNERS = Check(lambda v: None if isinstance(v, dict) and not set(v) - {"gpu", "trusted"} and all(
    isinstance(x, list) and all(isinstance(y, str) for y in x) for x in v.values()) else _RUNNERS_SHAPE, say="{why}")


def _admin_paths_problem(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) > MAX_ADMIN_PATHS:
        return f"admin_paths must be a list of at most {MAX_ADMIN_PATHS} path patterns"
    return next((f"admin_paths: {problem}" for v in value if (problem := admin_path_problem(v))), None)


_ADMIN_PATHS = Check(_admin_paths_problem, say="{why}", convert=lambda v: [str(x) for x in v])


@dataclass
class Settings:
    """The parsed ``gitops.yaml`` (defaults when the file is missing)."""

    repo: str | None = None
    # Where pull requests are evaluated (PR code runs there) and where jobs holding write credentials
    # run: two label sets, so one runner never serves both (see docs/workflows.md).
    gpu_labels: list[str] = field(default_factory=lambda: ["self-hosted", "gpu", "ephemeral"])
    trusted_labels: list[str] = field(default_factory=lambda: ["self-hosted", "gpu", "trusted"])
    admins: list[str] = field(default_factory=list)
    admin_paths: list[str] = field(default_factory=list)  # CODEOWNERS patterns the admins own too
    deploy: DeployConfig = field(default_factory=DeployConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    judge: JudgeConfig | None = None  # eval.judge
    raw: dict = field(default_factory=dict)

    def repository(self, env: dict[str, str]) -> str:
        """``owner/name`` for payloads: ``GITHUB_REPOSITORY`` (set in Actions), else ``github.repo``."""
        return env.get("GITHUB_REPOSITORY") or self.repo or ""


def read(root: Path, problems: Problems | None = None) -> Settings:
    """Read ``root/gitops.yaml``. With ``problems`` every problem is collected there and the
    settings that parsed are returned; without, the first problems raise :class:`RegistryError`."""
    path = root / SETTINGS_FILE
    p = problems if problems is not None else Problems()
    if not path.exists():
        return Settings()
    try:
        doc = yamlio.load_file(path, SETTINGS_FILE)
    except yamlio.YamlError as exc:
        if problems is None:
            raise
        p.append(exc.problem)
        return Settings()
    before = len(p)
    settings = parse(doc, SETTINGS_FILE, p)
    if problems is None and len(p) > before:
        found = p[before:]
        raise RegistryError(found[0]) if len(found) == 1 else RegistryError(
            f"{SETTINGS_FILE} has {len(found)} problems:", problems=found)
    return settings


def _section(spec: Any, doc: Any, key: str, src: str, p: Problems, empty_ok: bool = False) -> Any:
    """``doc[key]`` validated by ``spec`` (None when absent, null, empty with ``empty_ok``, or wrong:
    its problems go to ``p``)."""
    value = doc.get(key) if isinstance(doc, dict) else None
    if value is None or (empty_ok and not value):
        return None
    return validate(spec, value, src, p, path=key, node=doc, key=key)


def parse(doc: Any, src: str, p: Problems) -> Settings:
    """The settings in a loaded ``gitops.yaml`` document; problems go to ``p``. Each section is
    checked on its own, so a bad one leaves the others parsed (``gitops check`` lists them all)."""
    cfg = Settings()
    if doc is None:
        return cfg
    if not isinstance(doc, dict):
        p.add(src, None, None, "gitops.yaml must be a mapping with keys: " + ", ".join(TOP_KEYS))
        return cfg
    cfg.raw = doc
    for key in doc:
        if key not in TOP_KEYS:
            p.add(src, doc, key, f"unknown key '{shown(key)}' (allowed: {', '.join(TOP_KEYS)})")
    if github := _section(record_of(GithubConfig), doc, "github", src, p, empty_ok=True):
        cfg.repo = github.repo
    runners = _section(_RUNNERS, doc, "runners", src, p, empty_ok=True)
    if runners is not None:
        cfg.gpu_labels = list(runners.get("gpu") or cfg.gpu_labels)
        cfg.trusted_labels = list(runners.get("trusted") or cfg.trusted_labels)
        if set(cfg.trusted_labels) <= set(cfg.gpu_labels) or set(cfg.gpu_labels) <= set(cfg.trusted_labels):
            p.add(src, runners, "trusted", "runners.trusted and runners.gpu must each have a label the other "
                  "lacks, or a job for one could run on the other's runner (a runner takes any job whose labels "
                  "it all has)")
    if doc.get("admins"):
        cfg.admins = owners_of(doc["admins"], doc, "admins", src, p, "admins")
    cfg.admin_paths = _section(_ADMIN_PATHS, doc, "admin_paths", src, p) or []
    cfg.deploy = parse_deploy(doc, src, p)
    cfg.notify = parse_notify(doc, src, p)
    cfg.judge = parse_eval(doc, src, p)
    return cfg


def guarded_paths(settings: Settings) -> list[str]:
    """Every path pattern the admins own: the machinery, then the repository's ``admin_paths``."""
    return list(dict.fromkeys([*MACHINERY_PATHS, *settings.admin_paths]))


def admin_path_problem(pattern: Any) -> str | None:
    """Why ``pattern`` cannot be a CODEOWNERS path pattern, or None."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > 200:
        return "must be a path pattern of 1 to 200 characters, like /scripts/ or /deploy/*.sh"
    if any(c.isspace() for c in pattern) or pattern[0] in "!#" or "[" in pattern or "***" in pattern:
        return (f"'{pattern}' is not a CODEOWNERS pattern GitHub reads (no spaces, no leading '!' or '#', "
                "no [ ] ranges)")
    return None


def default_text(repo: str | None, hook_url: str | None = None) -> str:
    """The scaffolded gitops.yaml; without ``repo`` the key is a comment to fill in (a placeholder
    name would be used as the repository and fail only at the first GitHub call). ``hook_url``: one
    deploy hook, ``serving``, for ``production`` (signed with $GITOPS_DEPLOY_SECRET). A URL it
    cannot hold raises ConfigError."""
    hooks = " []"
    if hook_url is not None:
        if problem := url_problem(hook_url):
            raise ConfigError(f"--deploy-hook: {problem}")
        hooks = ("\n    - name: serving          # gitops serve (docs/serving.md) or any receiver "
                 f"(docs/deploy-webhooks.md)\n      url: {json.dumps(hook_url)}\n      aliases: [production]")
    return DEFAULT_TEXT.format(repo_line=f"repo: {repo}" if repo else "# repo: your-org/your-models", hooks=hooks)


# --- deploy: and notify: -----------------------------------------------------------------------

def url_problem(url: Any, secret_key: str = "secret_env") -> str | None:
    """Why ``url`` cannot be a webhook (or judge) URL, or None; ``secret_key`` is the key a secret
    belongs in instead."""
    if not isinstance(url, str) or not url:
        return "must be an http(s) URL"
    if len(url) > MAX_URL:
        return f"is longer than {MAX_URL} characters"
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - a port that is not a number raises here, not when sending
        hostname = parsed.hostname
    except ValueError as exc:  # an unclosed IPv6 bracket, a port out of range
        return f"is not a valid URL ({shown(exc)})"  # the URL itself is not echoed: it may carry a token
    if parsed.scheme not in ("http", "https") or not hostname:
        return f"'{_redact(url)}' must be an http:// or https:// URL with a host"
    if parsed.password:
        return f"must not carry a password; put secrets in the environment variable named by {secret_key}"
    return None


def _redact(url: str) -> str:
    parsed = urlparse(url)
    return shown(f"{parsed.scheme}://{parsed.netloc.rsplit('@', 1)[-1]}/..." if parsed.netloc else url[:40])


def _template_problems(template: Any) -> list[str]:
    """Unknown or malformed ``{placeholders}`` anywhere in a payload template."""
    found: list[str] = []
    if isinstance(template, dict):
        for k, v in template.items():
            if not isinstance(k, str):
                found.append(f"key {shown(repr(k))} must be a string")
            found += _template_problems(v)
    elif isinstance(template, list):
        for v in template:
            found += _template_problems(v)
    elif isinstance(template, str):
        try:
            fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            return [f"'{shown(template)}': {exc} (write '{{{{' for a literal brace)"]
        for f, spec, conv in fields:
            if f not in PLACEHOLDERS:
                found.append(f"'{{{shown(f)}}}' is not a placeholder (known: {', '.join(PLACEHOLDERS)})")
            elif spec or conv:
                # '{model:>200000000}' would build a 200 MB string per delivery; nothing needs a format spec
                found.append(f"'{shown(template)}': write the plain placeholder '{{{f}}}' (no conversion or "
                             "format spec such as '!r' or ':>10')")
    return found


def parse_deploy(doc: Any, src: str, problems: Problems) -> DeployConfig:
    """The ``deploy:`` section of the whole ``gitops.yaml`` document ``doc``; problems go to ``problems``."""
    before = len(problems)
    cfg = _section(record_of(DeployConfig), doc, "deploy", src, problems)
    if cfg is None:
        return DeployConfig()
    seen: set[str] = set()
    for i, (raw, hook) in enumerate(zip(doc["deploy"].get("hooks") or [], cfg.hooks)):  # names across hooks
        if hook.name in seen:
            problems.add(src, raw, "name", f"deploy.hooks[{i}]: the hook name '{shown(hook.name)}' is used twice")
        seen.add(hook.name)
    return cfg if len(problems) == before else DeployConfig()


def parse_notify(doc: Any, src: str, problems: Problems) -> NotifyConfig:
    """The ``notify:`` section of the whole ``gitops.yaml`` document ``doc``."""
    section = doc.get("notify") if isinstance(doc, dict) else None
    if isinstance(section, LineMap) and True in section and "on" not in section:
        # YAML 1.1 reads a bare `on:` key as the boolean True (the same quirk as workflow files).
        renamed = LineMap(("on" if k is True else k, v) for k, v in section.items())
        renamed.line = section.line
        renamed.key_lines = {"on" if k is True else k: n for k, n in section.key_lines.items()}
        doc = {"notify": renamed}
    return _section(record_of(NotifyConfig), doc, "notify", src, problems) or NotifyConfig()


# --- eval: -------------------------------------------------------------------------------------

def judge_model_problem(model: Any) -> str | None:
    """Why ``model`` cannot be the judge's model name, or None."""
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_JUDGE_MODEL \
            or any(c.isspace() or not c.isprintable() for c in model):
        return f"must be a model name of 1 to {MAX_JUDGE_MODEL} characters without spaces, e.g. judge@production"
    return None


def parse_eval(doc: Any, src: str, problems: Problems) -> JudgeConfig | None:
    """The ``eval:`` section (today only ``judge:``) of the whole ``gitops.yaml`` document ``doc``."""
    section = _section(record_of(EvalConfig), doc, "eval", src, problems)
    return section.judge if section is not None else None
