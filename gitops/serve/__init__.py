"""``gitops serve``: an OpenAI-compatible (chat) completions endpoint that follows an alias and swaps live.

Seams to the rest of the toolkit (everything else is internal):

- :class:`~gitops.serve.source.ModelSource` — ``resolve(ref) -> Resolved``: which exact version a
  reference names and where its verified files are (:class:`~gitops.serve.repo_source.RepoSource`
  reads an alias at a commit of a GitOps repository; :class:`DirSource` maps local directories for
  tests and benchmarks).
- :class:`~gitops.serve.hooks.DeployHandler` — ``verify(headers, body) -> payload``,
  ``target(payload, serving) -> Decision`` and a durable delivery store for ``POST /hooks/deploy``.
- :func:`~gitops.serve.app.create_app` + :class:`~gitops.serve.app.ServeConfig` build the ASGI
  app; :func:`~gitops.serve.server.make_server` / :class:`ServerThread` run it on uvicorn;
  :func:`~gitops.serve.launch.serve` is ``gitops serve`` (a repository's alias, in the foreground).

See docs/serving.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "app": ("ServeConfig", "create_app"),
    "hooks": ("Decision", "DeployHandler", "signed_verifier"),
    "launch": ("ServeOptions", "serve"),
    "repo_source": ("RepoSource",),
    "protocol": ("Limits",),
    "server": ("ServerThread", "make_server"),
    "source": ("DirSource", "ModelSource", "Resolved", "Target", "dir_md5"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gitops.serve' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"gitops.serve.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = ["Decision", "DeployHandler", "DirSource", "Limits", "ModelSource", "RepoSource", "Resolved", "ServeConfig",
           "ServeOptions", "ServerThread", "Target", "create_app", "dir_md5", "make_server", "serve", "signed_verifier"]
