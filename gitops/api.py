"""The library's one facade: every verb, re-exported from the module that holds it. Holds none itself.

Each verb lives in its own module (``gitops.registry.register``, ``gitops.data.ingest``, ...) and
takes the :class:`Workspace` as its first argument; they return data and never print. Names are
resolved on first use (PEP 562), so ``import gitops.api`` stays light and ``gitops show`` never
pays for training or DVC.

    from gitops import api as api
    ws = api.Workspace.open(".")
    api.register(ws, "review-autocomplete", Path("out/merged"), fmt="hf")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Workspace": "gitops.core.workspace",
    "init": "gitops.scaffold.init",
    "show": "gitops.registry.show",
    "create_model": "gitops.registry.create_model",
    "register": "gitops.registry.register",
    "add_prompt": "gitops.registry.prompt",
    "set_alias": "gitops.registry.alias",
    "unset_alias": "gitops.registry.alias",
    "check": "gitops.registry.check",
    "diff": "gitops.registry.diff",
    "history": "gitops.registry.history",
    "codeowners": "gitops.registry.codeowners",
    "create_dataset": "gitops.data.create_dataset",
    "ingest": "gitops.data.ingest",
    "show_dataset": "gitops.data.show_dataset",
    "read_rows": "gitops.data.batches",
    "train": "gitops.train.train",
    "register_base": ("gitops.train.register_base", "ensure_base"),
    "convert": "gitops.convert.convert",
    "plan_eval": "gitops.eval.evaluate",
    "evaluate": "gitops.predict.evaluation",
    "EvalOptions": "gitops.eval.evaluate",
    "evaluate_classification": "gitops.predict.evaluation",
    "report": ("gitops.report.render", "report_from_files"),
    "site": ("gitops.site.build", "site"),
    "post_report": "gitops.github.comments",
    "promote": "gitops.github.promote",
    "open_pull_request": "gitops.github.promote",
    "github_client": ("gitops.github.repository", "connect_to"),
    "pull_target": "gitops.github.pulls",
    "open_pull": "gitops.github.pulls",
    "propose_ingest": "gitops.github.proposal",
    "approvals": "gitops.github.approvals",
    "review_changes": "gitops.registry.review",
    "deploy": "gitops.deploy.webhooks",
    "notify": "gitops.deploy.notify",
    "serve": "gitops.serve.launch",
    "demo": "gitops.demo.story",
    "judge": ("gitops.eval.judge", "judge_file"),
    "predict": "gitops.predict.batch",
    "compare_variants": "gitops.predict.variants",
}

# What type checkers see: each export's real object, re-exported (`as` itself), never imported at run time.
# tests/test_api_types.py fails when this block and _EXPORTS disagree.
if TYPE_CHECKING:
    from gitops.convert.convert import convert as convert
    from gitops.core.workspace import Workspace as Workspace
    from gitops.data.batches import read_rows as read_rows
    from gitops.data.create_dataset import create_dataset as create_dataset
    from gitops.data.ingest import ingest as ingest
    from gitops.data.show_dataset import show_dataset as show_dataset
    from gitops.demo.story import demo as demo
    from gitops.deploy.notify import notify as notify
    from gitops.deploy.webhooks import deploy as deploy
    from gitops.eval.evaluate import EvalOptions as EvalOptions
    from gitops.eval.evaluate import plan_eval as plan_eval
    from gitops.eval.judge import judge_file as judge  # noqa: F401 - renamed re-export
    from gitops.github.approvals import approvals as approvals
    from gitops.github.comments import post_report as post_report
    from gitops.github.promote import open_pull_request as open_pull_request
    from gitops.github.promote import promote as promote
    from gitops.github.proposal import propose_ingest as propose_ingest
    from gitops.github.pulls import open_pull as open_pull
    from gitops.github.pulls import pull_target as pull_target
    from gitops.github.repository import connect_to as github_client  # noqa: F401 - renamed re-export
    from gitops.predict.batch import predict as predict
    from gitops.predict.evaluation import evaluate as evaluate
    from gitops.predict.evaluation import evaluate_classification as evaluate_classification
    from gitops.predict.variants import compare_variants as compare_variants
    from gitops.registry.alias import set_alias as set_alias
    from gitops.registry.alias import unset_alias as unset_alias
    from gitops.registry.check import check as check
    from gitops.registry.codeowners import codeowners as codeowners
    from gitops.registry.create_model import create_model as create_model
    from gitops.registry.diff import diff as diff
    from gitops.registry.history import history as history
    from gitops.registry.prompt import add_prompt as add_prompt
    from gitops.registry.register import register as register
    from gitops.registry.review import review_changes as review_changes
    from gitops.registry.show import show as show
    from gitops.report.render import report_from_files as report  # noqa: F401 - renamed re-export
    from gitops.scaffold.init import init as init
    from gitops.serve.launch import serve as serve
    from gitops.site.build import site as site
    from gitops.train.register_base import ensure_base as register_base  # noqa: F401 - renamed re-export
    from gitops.train.train import train as train

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gitops.api' has no attribute '{name}'")
    where = _EXPORTS[name]
    module, attr = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
