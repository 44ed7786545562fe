"""The index and each model's pages as plain data: what a template shows, nothing it computes.

A model page holds its aliases, the lineage graph's nodes and edges, the newest versions and alias
moves (older ones on numbered pages whose contents never change once full, so a new version or
move rewrites only the last one), metric trends and, for a classification model, the variants
table from the results documents found in the repository.
"""

from __future__ import annotations

from typing import Any

from gitops.core import refs
from gitops.core.records import Model, Version
from gitops.registry.audit import AliasEvent
from gitops.site import common
from gitops.site.common import Links, Page, clip, commit_view, person, rel, when
from gitops.site.gather import ResultsDoc, SiteInputs, utc
from gitops.site.lineage import lineage

TIMELINE_ON_MODEL_PAGE = 50
TIMELINE_PAGE = 250
VERSIONS_ON_MODEL_PAGE = 50
VERSIONS_PAGE = 250
MAX_METRIC_COLUMNS = 4
# What the versions table and the trends show first; bookkeeping (steps, wall time) only when room is left.
KNOWN_METRICS = ("eval_loss", "perplexity", "accuracy", "macro_accuracy", "train_loss", "loss", "latency_p95_ms",
                 "tokens_per_s")
BOOKKEEPING = ("steps", "wall_time_s", "epochs")


def index_page(inputs: SiteInputs, links: Links) -> Page:
    path = "index.html"
    reg = inputs.registry
    models = []
    for name in sorted(reg.models):
        m = reg.models[name]
        latest = m.latest()
        models.append({
            "name": name, "href": rel(path, common.model_path(name)), "description": clip(m.description, "text"),
            "task": clip(m.task, "name"), "versions": len(m.versions),
            "latest": _version_link(path, name, latest.id) if latest else None,
            "aliases": [_alias_cell(path, m, a) for a in sorted(m.aliases)],
            "owners": [clip(o, "name") for o in m.owners],
            "last": commit_view(inputs.last_change.get(f"model:{name}"), links)})
    datasets = []
    for name in sorted(reg.datasets):
        d = reg.datasets[name]
        newest = d.latest()
        datasets.append({
            "name": name, "href": rel(path, common.dataset_path(name)), "description": clip(d.description, "text"),
            "versions": len(d.versions),
            "latest": {"id": newest.id, "href": rel(path, common.dataset_version_path(name, newest.id))}
            if newest else None,
            "rows": (newest.total_rows if newest and newest.total_rows is not None
                     else sum(v.rows for v in d.versions.values())),
            "last": commit_view(inputs.last_change.get(f"dataset:{name}"), links)})
    return Page(path, "index.html.j2", {
        "title": "Model registry", "root": "", "breadcrumbs": [],
        "commit": commit_view(inputs.commit, links), "rev": clip(inputs.rev, "name"), "repo_url": links.repo(),
        "github": inputs.github, "models": models, "datasets": datasets,
        "results": len(inputs.results), "warnings": [clip(w, "text") for w in inputs.warnings]})


def _version_link(page: str, model: str, version: str) -> dict[str, str]:
    return {"id": version, "href": rel(page, common.version_path(model, version))}


def _alias_cell(page: str, m: Model, alias: str) -> dict[str, Any]:
    a = m.aliases[alias]
    return {"name": alias, "version": a.version, "href": rel(page, common.version_path(m.name, a.version))
            if a.version in m.versions else None, "protected": [clip(o, "name") for o in m.protected.get(alias, [])]}


def model_pages(inputs: SiteInputs, links: Links, name: str) -> list[Page]:
    """The model page, its numbered timeline pages and its numbered versions pages."""
    m = inputs.registry.models[name]
    path = common.model_path(name)
    events = inputs.events.get(name, [])
    docs = [d for d in inputs.results if d.results.model == name]
    ordered = sorted(m.versions.values(), key=lambda v: refs.version_number(v.id))
    columns = metric_columns(ordered)
    pages = []
    timeline_pages = _chunks(len(events), TIMELINE_PAGE)
    for number, (start, stop) in enumerate(timeline_pages, start=1):
        page = common.timeline_path(name, number)
        chronological = events[::-1][start:stop]
        rows = [timeline_row(page, name, e, docs, links) for e in reversed(chronological)]
        pages.append(Page(page, "timeline.html.j2", _listing(name, page, f"Alias timeline of {name}, page {number}",
                                                              rows, number, timeline_pages, common.timeline_path)))
    version_pages = _chunks(len(ordered), VERSIONS_PAGE)
    for number, (start, stop) in enumerate(version_pages, start=1):
        page = common.versions_path(name, number)
        rows = [version_row(page, inputs, name, v, columns) for v in reversed(ordered[start:stop])]
        view = _listing(name, page, f"Versions of {name}, page {number}", rows, number, version_pages,
                        common.versions_path)
        view["metric_columns"] = columns
        pages.append(Page(page, "versions.html.j2", view))
    shown_versions = ordered[::-1][:VERSIONS_ON_MODEL_PAGE]
    view = {
        "title": name, "root": "../../", "breadcrumbs": [{"text": "Registry", "href": rel(path, "index.html")}],
        "name": name, "description": clip(m.description, "text"), "task": clip(m.task, "name"),
        "owners": [clip(o, "name") for o in m.owners],
        "protected": [{"alias": a, "owners": [clip(o, "name") for o in owners]}
                      for a, owners in sorted(m.protected.items())],
        "gates": [gate_text(g) for g in m.gates],
        "file_url": links.file(f"registry/{name}/model.yaml", inputs.last_change.get(f"model:{name}")),
        "last": commit_view(inputs.last_change.get(f"model:{name}"), links),
        "aliases": [_alias_row(path, m, a, events) for a in sorted(m.aliases)],
        "lineage": lineage(inputs, m, path),
        "metric_columns": columns,
        "versions": {"rows": [version_row(path, inputs, name, v, columns) for v in shown_versions],
                     "total": len(ordered), "pages": _page_links(path, name, version_pages, common.versions_path)},
        "trends": trends(ordered, columns, path, name),
        "variants": variants(path, m, docs),
        "timeline": {"rows": [timeline_row(path, name, e, docs, links) for e in events[:TIMELINE_ON_MODEL_PAGE]],
                     "total": len(events),
                     "pages": _page_links(path, name, timeline_pages, common.timeline_path)},
        "results": [results_link(path, d) for d in sorted(docs, key=lambda d: d.results.created_at, reverse=True)],
    }
    pages.append(Page(path, "model.html.j2", view))
    return pages


def _chunks(total: int, size: int) -> list[tuple[int, int]]:
    """Chronological slices: page 1 holds the oldest; only the last page changes as things are added."""
    return [(start, min(start + size, total)) for start in range(0, total, size)]


def _page_links(page: str, model: str, chunks: list[tuple[int, int]], where) -> list[dict[str, Any]]:
    """Links to the numbered pages. The last, still filling, shows no end: a link reads the same
    on every page until a new page starts, so a full page is never rewritten for its neighbour."""
    return [{"number": n, "href": rel(page, where(model, n)), "first": start + 1,
             "last": stop if n < len(chunks) else None} for n, (start, stop) in enumerate(chunks, start=1)]


def _listing(model: str, page: str, title: str, rows: list, number: int, chunks: list, where) -> dict[str, Any]:
    return {"title": title, "root": "../../", "model": model,
            "breadcrumbs": [{"text": "Registry", "href": rel(page, "index.html")},
                            {"text": model, "href": rel(page, common.model_path(model))}],
            "rows": rows, "number": number, "pages": _page_links(page, model, chunks, where)}


def gate_text(gate: Any) -> str:
    bounds = {"max": "at most", "min": "at least", "max_increase_pct": "may rise by at most",
              "max_decrease_pct": "may fall by at most"}
    parts = []
    for key, words in bounds.items():
        value = getattr(gate, key)
        if value is not None:
            parts.append(f"{words} {common.number(value)}{'%' if key.endswith('_pct') else ''}")
    return clip(f"{gate.metric} " + " and ".join(parts), "line")


def _alias_row(page: str, m: Model, alias: str, events: list[AliasEvent]) -> dict[str, Any]:
    a = m.aliases[alias]
    since = next((e for e in events if e.alias == alias), None)
    return {**_alias_cell(page, m, alias), "note": clip(a.note, "note"),
            "since": when(since.date) if since else None}


def timeline_row(page: str, model: str, e: AliasEvent, docs: list[ResultsDoc], links: Links) -> dict[str, Any]:
    report = report_for(e, docs)
    return {
        "when": when(e.date), "alias": e.alias, "author": person(e.author),
        "old": _version_link(page, model, e.old) if e.old and refs.is_version(e.old) else None,
        "new": _version_link(page, model, e.new) if e.new and refs.is_version(e.new) else None,
        "commit": {"short": e.commit[:10], "url": links.commit(e.commit)},
        "pr": {"number": e.pr, "url": links.pull(e.pr)} if e.pr else None,
        "note": clip(e.note, "note") if e.note is not None else "",
        "subject": clip(e.subject),
        "report": {**results_link(page, report)} if report else None,
    }


def report_for(e: AliasEvent, docs: list[ResultsDoc]) -> ResultsDoc | None:
    """The evaluation that best documents a move to ``e.new``: one proposing this alias, against
    the version it replaced, made before the move; failing those, the newest evaluation of the version."""
    moved = utc(e.date)
    best, best_score = None, None
    for doc in docs:
        r = doc.results
        if r.candidate.version != e.new:
            continue
        made = utc(r.created_at)
        score = (r.alias == e.alias, r.baseline is not None and r.baseline.version == e.old,
                 made is not None and moved is not None and made <= moved, made.timestamp() if made else 0.0,
                 doc.path)
        if best_score is None or score > best_score:
            best, best_score = doc, score
    return best


def results_link(page: str, doc: ResultsDoc) -> dict[str, Any]:
    r = doc.results
    against = f" vs {r.baseline.version}" if r.baseline is not None else ""
    return {"href": rel(page, common.results_path(doc.slug)), "verdict": r.verdict,
            "label": clip(f"{r.candidate.version}{against}", "name"), "path": clip(doc.path),
            "when": when(r.created_at), "alias": clip(r.alias, "name") if r.alias else None}


def metric_columns(versions: list[Version]) -> list[str]:
    """The metrics the versions table and the trends show: the most common, known ones first."""
    counts: dict[str, int] = {}
    for v in versions:
        for key, value in v.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts, key=lambda k: (k in BOOKKEEPING, k not in KNOWN_METRICS,
                                           KNOWN_METRICS.index(k) if k in KNOWN_METRICS else 0, -counts[k], k))
    return [clip(k, "name") for k in ranked[:MAX_METRIC_COLUMNS]]


def version_row(page: str, inputs: SiteInputs, model: str, v: Version, columns: list[str]) -> dict[str, Any]:
    data = common.dataset_ref(v.dataset, inputs)
    base = common.model_ref(v.base_model, inputs)
    size = inputs.sizes.get((model, v.id))
    return {
        "id": v.id, "href": rel(page, common.version_path(model, v.id)),
        "format": v.format + (f"/{v.quantization}" if v.quantization else ""),
        "parent": _version_link(page, model, v.parent) if v.parent and v.parent in
        inputs.registry.models[model].versions else None,
        "base": {"text": clip(v.base_model, "name"),
                 "href": rel(page, common.version_path(*base)) if base else None} if v.base_model else None,
        "dataset": {"text": clip(v.dataset, "name"),
                    "href": rel(page, common.dataset_version_path(*data)) if data else None} if v.dataset else None,
        "size": _size(size) if size is not None else "",
        "created": when(v.created_at), "author": person(v.author),
        "metrics": [common.number(v.metrics.get(c)) for c in columns],
        "note": clip(v.note, "note") if v.note else "",
    }


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return ""


def trends(versions: list[Version], columns: list[str], page: str, model: str) -> list[dict[str, Any]]:
    """One chart per metric that two or more versions record: (version, value) in version order."""
    charts = []
    for metric in columns:
        points = [{"version": v.id, "n": refs.version_number(v.id), "value": float(v.metrics[metric] or 0.0),
                   "href": rel(page, common.version_path(model, v.id))}
                  for v in versions if _finite(v.metrics.get(metric))]
        if len(points) >= 2:
            charts.append({"metric": metric, "points": points})
    return charts


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and value == value and value not in (float("inf"), float("-inf")))


def variants(page: str, m: Model, docs: list[ResultsDoc]) -> dict[str, Any] | None:
    """A classification model's variants side by side, as ``gitops compare`` shows them: the
    newest results document of each version (as candidate), and baselines not evaluated themselves."""
    if m.classification is None:
        return None
    from gitops.report.classview import variant_cells

    newest: dict[str, ResultsDoc] = {}
    for doc in sorted(docs, key=lambda d: (d.results.created_at, d.path)):
        if doc.results.classification is not None:
            newest[doc.results.candidate.version] = doc
    rows: dict[str, dict[str, Any]] = {}
    for version, doc in newest.items():
        r = doc.results
        info = r.classification
        assert info is not None  # newest holds classification results only
        comparison = r.comparison("baseline")
        delta = comparison.deltas.get("accuracy") if comparison else None
        cells = variant_cells(r.candidate, info.candidate, delta, candidate=True,
                              baseline=r.baseline is not None)
        rows[version] = _variant_row(page, m.name, r.candidate.version, info.candidate.kind, cells, doc,
                                     r.baseline.version if r.baseline is not None else None)
        if r.baseline is not None and info.baseline is not None and r.baseline.version not in newest:
            cells = variant_cells(r.baseline, info.baseline, None, candidate=False, baseline=False)
            rows.setdefault(r.baseline.version, _variant_row(page, m.name, r.baseline.version,
                                                             info.baseline.kind, cells, doc, None))
    ordered = sorted(rows.values(), key=lambda row: refs.version_number(row["version"]["id"])
                     if refs.is_version(row["version"]["id"]) else 0)
    return {"rows": ordered, "labels": [clip(label, "name") for label in m.classification.labels][:50]}


def _variant_row(page: str, model: str, version: str, kind: str, cells: dict[str, str], doc: ResultsDoc,
                 baseline: str | None) -> dict[str, Any]:
    r = doc.results
    return {"version": _version_link(page, model, version) if refs.is_version(version) else {"id": clip(version),
                                                                                             "href": None},
            "kind": clip(kind, "name"), **cells, "baseline": baseline,
            "data": clip(f"{r.dataset.ref} ({r.dataset.split}, {r.dataset.rows:,} rows)", "line"),
            "results": results_link(page, doc)}
