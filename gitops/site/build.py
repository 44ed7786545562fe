"""``gitops site``: the registry at one commit as static HTML pages, written incrementally.

Everything is checked before a page is written (the revision, the output directory, the registry
and gitops.yaml at that commit); then every page's view is built and hashed, and only pages whose
inputs changed are rendered (:mod:`gitops.site.writer`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from gitops.core.workspace import Workspace
from gitops.site import detailpages, modelpages
from gitops.site.common import Links, Page
from gitops.site.gather import PREVIEW_BUDGET_BYTES, check_rev, gather
from gitops.site.lineage import children_index
from gitops.site.templating import fingerprint, render
from gitops.site.writer import check_out_dir, key_of, write_site

MAX_PAGE_BYTES = 1 << 20  # pages are paginated to stay under this; a bigger one is reported


@dataclass
class SiteResult:
    out: Path
    commit: str
    pages: int
    written: list[str]
    unchanged: int
    removed: list[str]
    seconds: float
    largest: tuple[str, int]
    warnings: list[str] = field(default_factory=list)


def site(ws: Workspace, out: Path | None = None, rev: str | None = None) -> SiteResult:
    """Render the registry at ``rev`` (default HEAD) into ``out`` (default ``_site`` in the
    repository). Without ``rev`` the results documents the work tree holds (committed or not,
    e.g. what ``gitops eval --out`` left) are shown too; with it, only those committed at ``rev``."""
    start = time.perf_counter()
    out = Path(out) if out is not None else ws.root / "_site"
    check_out_dir(out, ws.root)
    commit = check_rev(ws, rev)
    inputs = gather(ws, commit, rev or "HEAD", worktree_results=rev is None)
    links = Links(inputs)
    pages: list[Page] = [modelpages.index_page(inputs, links)]
    for name in sorted(inputs.registry.models):
        model = inputs.registry.models[name]
        pages += modelpages.model_pages(inputs, links, name)
        children = children_index(model)
        pages += [detailpages.version_page(ws, inputs, links, model, v, children) for v in model.versions.values()]
    budget = [PREVIEW_BUDGET_BYTES]
    for name in sorted(inputs.registry.datasets):
        pages += detailpages.dataset_pages(ws, inputs, links, inputs.registry.datasets[name], budget)
    pages += [detailpages.results_page(inputs, links, doc) for doc in inputs.results]
    fp = fingerprint()
    outcome = write_site(out, [(p.path, key_of(p.view, fp), partial(render, p.template, p.view)) for p in pages])
    largest = max(outcome.sizes.items(), key=lambda item: item[1], default=("", 0))
    warnings = list(inputs.warnings)
    big = [p for p, size in outcome.sizes.items() if size > MAX_PAGE_BYTES]
    if big:
        warnings.append(f"{len(big)} page(s) exceed 1 MiB, the largest {largest[0]} ({largest[1]:,} bytes)")
    return SiteResult(out=out, commit=commit, pages=len(pages), written=outcome.written, unchanged=outcome.unchanged,
                      removed=outcome.removed, seconds=time.perf_counter() - start, largest=largest,
                      warnings=warnings)
