"""The library's one facade: every verb, re-exported from the module that holds it. Holds none itself.

Each verb lives in its own module (``gitops.registry.register``, ``gitops.data.ingest``, ...) and
takes the :class:`Workspace` as its first argument; they return data and never print. Names are
resolved on first use (PEP 562), so ``import gitops.api`` stays light and ``gitops show`` never
pays for training or DVC.

    from gitops import api
    ws = api.Workspace.open(".")
    api.register(ws, "review-autocomplete", Path("out/merged"), fmt="hf")
"""

from __future__ import annotations

import importlib
from typing import Any

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
