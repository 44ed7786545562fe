"""``gitops serve``: an OpenAI-compatible completions endpoint that follows an alias and swaps live.

Seams to the rest of the toolkit (everything else is internal):

- :class:`~gitops.serve.source.ModelSource` — ``resolve(ref) -> Resolved``: which exact version a
  reference names and where its verified files are (the registry implements it; :class:`DirSource`
  maps local directories for tests and benchmarks).
- :class:`~gitops.serve.hooks.DeployHandler` — ``verify(headers, body) -> payload`` and
  ``target(payload) -> ref | None`` for ``POST /hooks/deploy``.
- :func:`~gitops.serve.app.create_app` + :class:`~gitops.serve.app.ServeConfig` build the ASGI
  app; :func:`~gitops.serve.server.make_server` / :class:`ServerThread` run it on uvicorn.

See docs/serving.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "app": ("ServeConfig", "create_app"),
    "hooks": ("DeployHandler",),
    "protocol": ("Limits",),
    "server": ("ServerThread", "make_server"),
    "source": ("DirSource", "ModelSource", "Resolved", "dir_md5"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gitops.serve' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"gitops.serve.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


__all__ = ["DeployHandler", "DirSource", "Limits", "ModelSource", "Resolved", "ServeConfig", "ServerThread",
           "create_app", "dir_md5", "make_server"]
