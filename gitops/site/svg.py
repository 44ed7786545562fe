"""Inline SVG: the lineage graph and the metric trend charts. No script, no external reference:
every text from data is escaped here (:func:`markupsafe.escape`), every number is ours.

Readable without colour: edge kinds differ by dash pattern as well as by class, nodes carry
their kind in words, and each chart has a ``<title>``, a ``<desc>`` that says what it shows, and a
table beside it (in the template).
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

NODE_W, NODE_H, ROW = 150, 40, 52
COL_GAP, TOP, LEFT = 80, 44, 40
COLUMNS = (("data", "Data set versions"), ("trained", "Versions"), ("derived", "Variants"),
           ("aliases", "Aliases"))
DASH = {"data": "", "parent": "6 4", "derived": "2 3", "alias": "1 4"}
EDGE_WORDS = {"data": "trained on (solid)", "parent": "fine-tuned from (dashed)",
              "derived": "converted from / a prompt on (dash-dot)", "alias": "alias points at (dotted)"}


def _attr(value: object) -> Markup:
    return escape(str(value))


def lineage_svg(graph: dict[str, Any], model: str) -> Markup:
    """The graph of :func:`gitops.site.lineage.lineage` as an SVG element (links to each node's page)."""
    columns = graph["columns"]
    rows = _rows(columns, graph["edges"])
    height = TOP + (max(rows.values(), default=0) + 1) * ROW + 10
    width = LEFT + len(COLUMNS) * NODE_W + (len(COLUMNS) - 1) * COL_GAP + 10
    pos: dict[str, tuple[float, float]] = {}
    for c, (key, _) in enumerate(COLUMNS):
        for node in columns[key]:
            pos[node["id"]] = (LEFT + c * (NODE_W + COL_GAP), TOP + rows[node["id"]] * ROW)
    out = [Markup('<svg class="lineage" xmlns="http://www.w3.org/2000/svg" role="group" '
                  'aria-labelledby="lineage-title lineage-desc" viewBox="0 0 {w} {h}" width="{w}" height="{h}">')
           .format(w=width, h=height),
           Markup('<title id="lineage-title">Lineage of {}</title>').format(model),
           Markup('<desc id="lineage-desc">{}</desc>').format(_describe(graph)),
           Markup('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
                  'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>')]
    for c, (_, label) in enumerate(COLUMNS):
        out.append(Markup('<text class="column" x="{x}" y="20">{t}</text>').format(
            x=LEFT + c * (NODE_W + COL_GAP), t=label))
    for edge in graph["edges"]:
        if edge["from"] in pos and edge["to"] in pos:
            out.append(_edge(edge, pos[edge["from"]], pos[edge["to"]]))
    for key, _ in COLUMNS:
        for node in columns[key]:
            out.append(_node(node, key, *pos[node["id"]]))
    out.append(Markup("</svg>"))
    return Markup("").join(out)


def _rows(columns: dict[str, list[dict[str, Any]]], edges: list[dict[str, str]]) -> dict[str, int]:
    """A row for each node: versions in order; a variant or alias beside what it comes from; a
    data set version beside the first version trained on it; never two in one cell."""
    rows = {node["id"]: i for i, node in enumerate(columns["trained"])}
    sources: dict[str, list[str]] = {}
    for edge in edges:
        sources.setdefault(edge["to"], []).append(edge["from"])
        sources.setdefault(edge["from"] + "<", []).append(edge["to"])
    for key in ("derived", "aliases"):
        taken: set[int] = set()
        for node in columns[key]:
            want = min((rows[s] for s in sources.get(node["id"], []) if s in rows), default=0)
            rows[node["id"]] = _free(want, taken)
    taken = set()
    for node in columns["data"]:
        want = min((rows[t] for t in sources.get(node["id"] + "<", []) if t in rows), default=0)
        rows[node["id"]] = _free(want, taken)
    return rows


def _free(want: int, taken: set[int]) -> int:
    while want in taken:
        want += 1
    taken.add(want)
    return want


def _node(node: dict[str, Any], kind: str, x: float, y: float) -> Markup:
    sub = node.get("sub", "") + (" · protected" if node.get("protected") else "")
    words = {"data": "data set version", "trained": "version", "derived": "variant", "aliases": "alias"}[kind]
    body = Markup('<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6"/>'
                  '<text x="{tx}" y="{ty}">{label}</text><text class="sub" x="{tx}" y="{sy}">{sub}</text>'
                  '<title>{words} {label}{extra}</title>').format(
        x=x, y=y, w=NODE_W, h=NODE_H, tx=x + 8, ty=y + 17, sy=y + 33, label=node["label"], sub=sub,
        words=words, extra=f" ({sub})" if sub else "")
    if node.get("href"):
        body = Markup('<a href="{}">{}</a>').format(node["href"], body)
    return Markup('<g class="node node-{k}" data-node="{id}">{b}</g>').format(k=kind, id=node["id"], b=body)


def _edge(edge: dict[str, str], a: tuple[float, float], b: tuple[float, float]) -> Markup:
    kind = edge["kind"]
    if kind == "parent":  # both in the versions column: an arc on its left side
        x, y1, y2 = a[0], a[1] + NODE_H / 2, b[1] + NODE_H / 2
        bend = min(34, 12 + abs(y2 - y1) / 8)
        d = f"M{x:.0f},{y1:.0f} C{x - bend:.0f},{y1:.0f} {x - bend:.0f},{y2:.0f} {x:.0f},{y2:.0f}"
    else:
        x1, y1, x2, y2 = a[0] + NODE_W, a[1] + NODE_H / 2, b[0], b[1] + NODE_H / 2
        mid = (x1 + x2) / 2
        d = f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
    dash = Markup(' stroke-dasharray="{}"').format(DASH[kind]) if DASH[kind] else Markup("")
    return Markup('<path class="edge edge-{k}" data-edge="{f} {t}" d="{d}"{dash} marker-end="url(#arrow)">'
                  "<title>{title}</title></path>").format(k=kind, f=edge["from"], t=edge["to"], d=d, dash=dash,
                                                        title=edge["title"])


def _describe(graph: dict[str, Any]) -> str:
    c = graph["columns"]
    text = (f"{len(c['trained']) + len(c['derived'])} versions shown of {graph['total']}, "
            f"{len(c['data'])} data set versions, {len(c['aliases'])} aliases.")
    if len(graph["edges"]) <= 30:
        text += " " + "; ".join(e["title"] for e in graph["edges"]) + ("." if graph["edges"] else "")
    return text


def legend() -> list[str]:
    return [EDGE_WORDS[k] for k in ("data", "parent", "derived", "alias")]


# --- metric trends -------------------------------------------------------------------------------

CHART_W, CHART_H = 560, 200
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 14, 34
MAX_MARKED_POINTS = 200  # more points than this: the line alone (the values are in the tables)


def trend_svg(chart: dict[str, Any], index: int) -> Markup:
    """One metric across versions: a line through (version, value), its range on the axes."""
    points = chart["points"]
    metric = chart["metric"]
    xs, ys = [p["n"] for p in points], [p["value"] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y0 == y1:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    inner_w, inner_h = CHART_W - PAD_L - PAD_R, CHART_H - PAD_T - PAD_B

    def px(n: float) -> float:
        return PAD_L + (inner_w * (n - x0) / (x1 - x0) if x1 > x0 else inner_w / 2)

    def py(v: float) -> float:
        return PAD_T + inner_h * (1 - (v - y0) / (y1 - y0))

    ident = f"trend-{index}"
    line = " ".join(f"{px(p['n']):.1f},{py(p['value']):.1f}" for p in points)
    out = [Markup('<svg class="trend" xmlns="http://www.w3.org/2000/svg" role="img" '
                  'aria-labelledby="{i}-title {i}-desc" viewBox="0 0 {w} {h}" width="{w}" height="{h}">').format(
        i=ident, w=CHART_W, h=CHART_H),
           Markup('<title id="{i}-title">{m} across versions</title>').format(i=ident, m=metric),
           Markup('<desc id="{i}-desc">{d}</desc>').format(i=ident, d=describe_trend(chart)),
           Markup('<line class="axis" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/><line class="axis" x1="{l}" y1="{t}" '
                  'x2="{l}" y2="{b}"/>').format(l=PAD_L, r=CHART_W - PAD_R, t=PAD_T, b=CHART_H - PAD_B)]
    for value in (max(ys), min(ys)):
        out.append(Markup('<text class="tick" x="{x}" y="{y}" text-anchor="end">{v}</text>').format(
            x=PAD_L - 6, y=py(value) + 4, v=_short(value)))
    for p in (points[0], points[-1]) if len(points) > 1 else (points[0],):
        out.append(Markup('<text class="tick" x="{x}" y="{y}" text-anchor="middle">{v}</text>').format(
            x=px(p["n"]), y=CHART_H - PAD_B + 16, v=p["version"]))
    out.append(Markup('<text class="tick" x="{x}" y="{y}" text-anchor="middle">version</text>').format(
        x=PAD_L + inner_w / 2, y=CHART_H - 4))
    out.append(Markup('<polyline class="series" fill="none" points="{}"/>').format(line))
    if len(points) <= MAX_MARKED_POINTS:
        for p in points:
            out.append(Markup('<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5"><title>{v}: {val}</title>'
                              "</circle>").format(x=px(p["n"]), y=py(p["value"]), v=p["version"],
                                                   val=_short(p["value"])))
    out.append(Markup("</svg>"))
    return Markup("").join(out)


def describe_trend(chart: dict[str, Any]) -> str:
    points = chart["points"]
    first, last = points[0], points[-1]
    low = min(points, key=lambda p: p["value"])
    high = max(points, key=lambda p: p["value"])
    return (f"{chart['metric']} over {len(points)} versions: {_short(first['value'])} at {first['version']}, "
            f"{_short(last['value'])} at {last['version']}; lowest {_short(low['value'])} ({low['version']}), "
            f"highest {_short(high['value'])} ({high['version']}).")


def _short(value: float) -> str:
    from gitops.eval.gates import format_number

    return format_number(value)
