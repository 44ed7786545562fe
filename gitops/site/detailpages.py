"""The detail pages as plain data: one per version (its card, config, lineage, the evaluations of
it, where its weights are), one per data set and data set version (rows per split, batches,
schema, a preview of the rows), one per results document (the report of an evaluation)."""

from __future__ import annotations

from typing import Any

from gitops import yamlio
from gitops.core import layout, refs
from gitops.core.records import Dataset, Model, Version
from gitops.core.workspace import Workspace
from gitops.eval.results import EvalResults, ModelResult
from gitops.site import common
from gitops.site.common import Links, Page, clip, commit_view, person, rel, when
from gitops.site.gather import SiteInputs, batch_preview, model_card
from gitops.site.lineage import relations
from gitops.site.modelpages import results_link, version_row

MAX_SAMPLES = 12
MAX_PREVIEW_COLUMNS = 12


def _crumbs(page: str, *trail: tuple[str, str]) -> list[dict[str, str]]:
    return [{"text": "Registry", "href": rel(page, "index.html")}] + [
        {"text": text, "href": rel(page, target)} for text, target in trail]


def version_page(ws: Workspace, inputs: SiteInputs, links: Links, m: Model, v: Version,
                 children: dict[str, list[tuple[str, str]]]) -> Page:
    path = common.version_path(m.name, v.id)
    docs = [d for d in inputs.results if d.results.model == m.name]
    evaluated = []
    for d in sorted(docs, key=lambda d: (d.results.created_at, d.path), reverse=True):
        roles = [role for role in ("candidate", "baseline", "parent")
                 if (side := getattr(d.results, role)) is not None and side.version == v.id]
        if roles:
            evaluated.append({**results_link(path, d), "roles": roles})
    config = yamlio.dumps(v.config) if v.config else ""
    card = model_card(ws, v.md5) if v.format != "prompt" and inputs.dvc_cache else None
    pointer = layout.pointer(v) if v.format != "prompt" else None
    registered = inputs.registered.get((m.name, v.id))
    row = version_row(path, inputs, m.name, v, [])
    return Page(path, "version.html.j2", {
        "title": f"{m.name} {v.id}", "root": "../../",
        "breadcrumbs": _crumbs(path, (m.name, common.model_path(m.name))),
        "model": m.name, "row": row, "description": clip(m.description, "text"),
        "aliases_protected": {a: [clip(o, "name") for o in owners] for a, owners in m.protected.items()},
        "metrics": [{"name": clip(k, "name"), "value": common.number(val)} for k, val in list(v.metrics.items())[:100]],
        "config": clip(config, "config"), "config_hash": clip(v.config_hash, "name"),
        "lineage": relations(inputs, m, v, path, children),
        "made_from": common.source_commit(v.commit, links),
        "registered": commit_view(registered, links),
        "evaluated": evaluated[:100],
        "weights": {"path": clip(v.path, "line"), "md5": clip(v.md5, "name"), "pointer": clip(pointer, "line"),
                    "pointer_url": links.file(pointer, registered) if pointer else None,
                    "config_url": links.file(v.path, registered) if v.format == "prompt" else None,
                    "base_md5": clip(v.base_md5, "name")},
        "card": clip(card, "config") if card else None,
        "note": clip(v.note, "note") if v.note else "",
    })


def dataset_pages(ws: Workspace, inputs: SiteInputs, links: Links, d: Dataset, budget: list[int]) -> list[Page]:
    """The data set's page and one page per version (``budget``: bytes of batch files left to
    read for previews in this run, newest versions first)."""
    path = common.dataset_path(d.name)
    used = _trained_on(inputs, d.name)
    ordered = sorted(d.versions.values(), key=lambda v: refs.version_number(v.id))
    schema = _schema(d)
    rows = []
    for v in reversed(ordered):
        rows.append({"id": v.id, "href": rel(path, common.dataset_version_path(d.name, v.id)), "rows": v.rows,
                     "total": v.total_rows, "splits": _splits(v.splits), "batch": clip(v.batch, "line"),
                     "source": clip(v.source, "line"), "created": when(v.created_at), "author": person(v.author),
                     "models": len(used.get(v.id, []))})
    pages = [Page(path, "dataset.html.j2", {
        "title": f"Data set {d.name}", "root": "../../", "breadcrumbs": _crumbs(path),
        "name": d.name, "description": clip(d.description, "text"), "schema": schema, "versions": rows[:1000],
        "more_versions": max(len(rows) - 1000, 0),
        "file_url": links.file(f"registry/datasets/{d.name}.yaml", inputs.last_change.get(f"dataset:{d.name}")),
        "last": commit_view(inputs.last_change.get(f"dataset:{d.name}"), links)})]
    previews = {v.id: batch_preview(ws, v.batch, budget) for v in reversed(ordered)}
    for index, v in enumerate(ordered):
        page = common.dataset_version_path(d.name, v.id)
        batches = [{"id": b.id, "batch": clip(b.batch, "line"), "rows": b.rows,
                    "href": rel(page, common.dataset_version_path(d.name, b.id))} for b in ordered[: index + 1]]
        preview = previews[v.id]
        columns = [*list(d.columns)[:MAX_PREVIEW_COLUMNS], "split"]
        pages.append(Page(page, "dataset_version.html.j2", {
            "title": f"{d.name}@{v.id}", "root": "../../",
            "breadcrumbs": _crumbs(page, (d.name, common.dataset_path(d.name))),
            "name": d.name, "id": v.id, "rows": v.rows, "total": v.total_rows, "splits": _splits(v.splits),
            "batch": clip(v.batch, "line"), "md5": clip(v.md5, "name"), "source": clip(v.source, "line"),
            "created": when(v.created_at), "author": person(v.author),
            "made_at": common.source_commit(v.commit, links),
            "ingested": commit_view(inputs.registered.get((f"dataset:{d.name}", v.id)), links),
            "split_column": clip(v.split_column, "name") if v.split_column else None,
            "normalize": [clip(step, "name") for step in v.normalize or []],
            "batches": batches[-200:], "earlier_batches": max(len(batches) - 200, 0),
            "schema": schema,
            "models": [{"text": u["text"], "href": rel(page, u["path"])} for u in used.get(v.id, [])[:200]],
            "preview": {"columns": [clip(c, "name") for c in columns],
                        "rows": [[clip(_cell(r.get(c)), "cell") for c in columns] for r in preview]}
            if preview else None,
        }))
    return pages


def _cell(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _splits(splits: dict[str, int]) -> list[dict[str, Any]]:
    return [{"name": clip(k, "name"), "rows": n} for k, n in list(splits.items())[:20]]


def _schema(d: Dataset) -> dict[str, Any]:
    return {"columns": [{"name": clip(k, "name"), "type": clip(t, "name"), "text": k == d.text_field,
                         "key": k in d.key} for k, t in list(d.columns.items())[:200]],
            "splits": [{"name": clip(k, "name"), "fraction": f"{f:.0%}"} for k, f in d.splits.items()],
            "split_column": clip(d.split_column, "name") if d.split_column else None,
            "normalize": [clip(step, "name") for step in d.normalize]}


def _trained_on(inputs: SiteInputs, dataset: str) -> dict[str, list[dict[str, str]]]:
    """Data set version -> the model versions that name it as their data set."""
    out: dict[str, list[dict[str, str]]] = {}
    for name in sorted(inputs.registry.models):
        m = inputs.registry.models[name]
        for v in sorted(m.versions.values(), key=lambda x: refs.version_number(x.id)):
            data = common.dataset_ref(v.dataset, inputs)
            if data is not None and data[0] == dataset:
                out.setdefault(data[1], []).append({"text": f"{name}@{v.id}",
                                                    "path": common.version_path(name, v.id)})
    return out


def results_page(inputs: SiteInputs, links: Links, doc: Any) -> Page:
    """An evaluation's report: the models, each metric with its change and interval, the gates,
    the samples side by side, where it ran."""
    from gitops.report.views import metric_rows

    r: EvalResults = doc.results
    path = common.results_path(doc.slug)
    model = inputs.registry.models.get(r.model)

    def side(m: ModelResult | None, role: str) -> dict[str, Any] | None:
        if m is None:
            return None
        linked = model is not None and m.version in model.versions
        return {"role": role, "ref": clip(m.ref, "name"), "version": clip(m.version, "name"),
                "format": clip(m.format + (f"/{m.quantization}" if m.quantization else ""), "name"),
                "href": rel(path, common.version_path(r.model, m.version)) if linked else None}

    tables = []
    for against in ("baseline", "parent"):
        other = getattr(r, against)
        if other is None or (against == "parent" and r.baseline is not None and r.baseline.version == other.version):
            continue
        tables.append({"against": against, "version": clip(other.version, "name"),
                       "rows": [{"label": clip(row.label, "name"), "candidate": row.candidate, "other": row.baseline,
                                 "change": str(row.change), "better": row.better}
                                for row in metric_rows(r, against)][:50]})
    samples = [{"prompt": clip(s.prompt, "sample"), "candidate": clip(s.candidate, "sample"),
                "baseline": clip(s.baseline, "sample") if s.baseline is not None else None,
                "reference": clip(s.reference, "sample") if s.reference is not None else None}
               for s in r.samples[:MAX_SAMPLES]]
    return Page(path, "results.html.j2", {
        "title": f"Evaluation of {r.candidate.ref}", "root": "../",
        "breadcrumbs": _crumbs(path, *([(r.model, common.model_path(r.model))] if model is not None else [])),
        "path": clip(doc.path), "committed": doc.committed, "file_url": links.file(doc.path, doc.commit),
        "model": clip(r.model, "name"), "alias": clip(r.alias, "name") if r.alias else None,
        "created": when(r.created_at), "verdict": r.verdict,
        "sides": [s for s in (side(r.candidate, "candidate"), side(r.baseline, "baseline"),
                              side(r.parent, "parent")) if s is not None],
        "dataset": {"ref": clip(r.dataset.ref, "name"), "split": clip(r.dataset.split, "name"), "rows": r.dataset.rows},
        "tables": tables,
        "gates": [{"text": gate_text_of(g), "passed": g.passed, "skipped": g.skipped,
                   "message": clip(g.message, "line")}
                  for g in r.gates][:50],
        "samples": samples, "more_samples": max(len(r.samples) - MAX_SAMPLES, 0),
        "environment": {k: clip(v, "name") for k, v in _environment(r).items()},
    })


def gate_text_of(g: Any) -> str:
    return clip(f"{g.metric} {g.bound} {common.number(g.threshold)}", "line")


def _environment(r: EvalResults) -> dict[str, str]:
    env = r.environment
    out = {}
    for key in ("device", "threads", "python", "torch", "transformers", "peft", "ctranslate2", "gitops", "platform"):
        value = getattr(env, key, None)
        if value not in (None, ""):
            out[key] = str(value)
    return out

