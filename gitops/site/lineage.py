"""A model's lineage as a graph (data, not drawing): data set versions -> versions -> converted
variants -> aliases, with the edges between them (trained on, fine-tuned from, converted from,
points at). :mod:`gitops.site.svg` draws it; a version's page lists the same relations as text.
"""

from __future__ import annotations

from typing import Any

from gitops.core import refs
from gitops.core.records import Model, Version
from gitops.site import common
from gitops.site.common import rel
from gitops.site.gather import SiteInputs

MAX_GRAPH_VERSIONS = 60  # the newest versions, plus every version an alias names
DERIVED_FORMATS = ("ct2", "prompt")  # made from another version without training
MAX_CHAIN = 12  # ancestors listed on a version's page


def derived_from(m: Model, v: Version) -> str | None:
    """The version a converted variant or prompt version was made from (its parent or pinned base)."""
    if v.format not in DERIVED_FORMATS:
        return None
    if v.parent and v.parent in m.versions:
        return v.parent
    base = v.base_model or ""
    name, _, ref = base.partition("@")
    return ref if name == m.name and ref in m.versions else None


def trained_from(m: Model, v: Version) -> str | None:
    """The version a trained version continued from (its parent), if it is one of this model's."""
    if v.format in DERIVED_FORMATS:
        return None
    return v.parent if v.parent and v.parent in m.versions else None


def lineage(inputs: SiteInputs, m: Model, page: str) -> dict[str, Any]:
    """The graph of ``m``: four columns of nodes and the edges between them (ids are ``kind:name``)."""
    ordered = sorted(m.versions, key=refs.version_number)
    named = {a.version for a in m.aliases.values() if a.version in m.versions}
    keep = set(ordered[-MAX_GRAPH_VERSIONS:]) | named
    shown = [v for v in ordered if v in keep]
    columns: dict[str, list[dict[str, Any]]] = {"data": [], "trained": [], "derived": [], "aliases": []}
    edges: list[dict[str, str]] = []
    datasets: dict[str, tuple[str, str]] = {}
    for vid in shown:
        v = m.versions[vid]
        node: dict[str, Any] = {"id": f"version:{vid}", "label": vid, "sub": common.clip(_format(v), "name"),
                "href": rel(page, common.version_path(m.name, vid))}
        source = derived_from(m, v)
        columns["derived" if v.format in DERIVED_FORMATS else "trained"].append(node)
        if source is not None and source in keep:
            verb = "converted from" if v.format == "ct2" else "a prompt on"
            edges.append({"from": f"version:{source}", "to": node["id"], "kind": "derived",
                          "title": f"{vid} is {verb} {source}"})
        parent = trained_from(m, v)
        if parent is not None and parent in keep:
            edges.append({"from": f"version:{parent}", "to": node["id"], "kind": "parent",
                          "title": f"{vid} was fine-tuned from {parent}"})
        data = common.dataset_ref(v.dataset, inputs)
        if data is not None:
            datasets[f"dataset:{data[0]}@{data[1]}"] = data
            edges.append({"from": f"dataset:{data[0]}@{data[1]}", "to": node["id"], "kind": "data",
                          "title": f"{vid} was trained on {data[0]}@{data[1]}"})
    for key in sorted(datasets, key=lambda k: (datasets[k][0], refs.version_number(datasets[k][1]))):
        name, version = datasets[key]
        rows = inputs.registry.datasets[name].versions[version].total_rows
        columns["data"].append({"id": key, "label": f"{name}@{version}",
                                "sub": f"{rows:,} rows" if rows is not None else "",
                                "href": rel(page, common.dataset_version_path(name, version))})
    for alias in sorted(m.aliases):
        target = m.aliases[alias].version
        node = {"id": f"alias:{alias}", "label": alias, "sub": f"→ {target}",
                "protected": alias in m.protected, "href": None}
        columns["aliases"].append(node)
        if target in keep:
            edges.append({"from": f"version:{target}", "to": node["id"], "kind": "alias",
                          "title": f"{alias} points at {target}"})
    return {"columns": columns, "edges": edges, "omitted": len(ordered) - len(shown), "total": len(ordered)}


def _format(v: Version) -> str:
    return v.format + (f"/{v.quantization}" if v.quantization else "")


def children_index(m: Model) -> dict[str, list[tuple[str, str]]]:
    """Version -> the versions made from it, as (id, how), in version order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for other in sorted(m.versions.values(), key=lambda x: refs.version_number(x.id)):
        source = derived_from(m, other)
        if source is not None:
            out.setdefault(source, []).append((other.id, "converted" if other.format == "ct2" else "prompt"))
        parent = trained_from(m, other)
        if parent is not None:
            out.setdefault(parent, []).append((other.id, "fine-tuned"))
    return out


def relations(inputs: SiteInputs, m: Model, v: Version, page: str,
              children: dict[str, list[tuple[str, str]]]) -> dict[str, Any]:
    """One version's lineage as text: its ancestors back to the first, what it was made from, what
    was made from it (``children``: :func:`children_index`), and which aliases name it."""
    chain: list[Any] = []
    seen = {v.id}
    current = v
    while True:
        up = derived_from(m, current) or trained_from(m, current)
        if up is None or up in seen or len(chain) >= MAX_CHAIN:
            break
        seen.add(up)
        how = "converted from" if current.format == "ct2" else "a prompt on" if current.format == "prompt" \
            else "fine-tuned from"
        chain.append({"how": how, "of": current.id, "id": up, "href": rel(page, common.version_path(m.name, up))})
        current = m.versions[up]
    made = children.get(v.id, [])
    data = common.dataset_ref(v.dataset, inputs)
    return {"chain": chain, "more_chain": up is not None and len(chain) >= MAX_CHAIN,
            "children": [{"id": c, "how": how, "href": rel(page, common.version_path(m.name, c))}
                         for c, how in made[:200]],
            "more_children": max(len(made) - 200, 0),
            "aliases": sorted(a for a, alias in m.aliases.items() if alias.version == v.id),
            "dataset": {"text": common.clip(v.dataset, "name"),
                        "href": rel(page, common.dataset_version_path(*data)) if data else None} if v.dataset else None}
