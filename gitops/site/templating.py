"""Pages from their views: one jinja2 environment over the templates shipped in the package,
autoescaping everything (HTML and the SVG inside it), with the SVG builders as globals."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from gitops import __version__

TEMPLATES = Path(__file__).parent / "templates"
# A strict policy holds: the pages have no script at all, and every style is inline.
CSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'"


@lru_cache(maxsize=1)
def environment():  # untyped: a jinja2.Environment (imported here: only this command needs it)
    import jinja2

    from gitops.site import svg

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.globals.update(lineage_svg=svg.lineage_svg, trend_svg=svg.trend_svg, legend=svg.legend, csp=CSP,
                       generator=f"gitops {__version__}")
    return env


def render(template: str, view: dict) -> bytes:
    return environment().get_template(template).render(**view).encode("utf-8")


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """What the pages depend on besides their views: the templates and the code that draws them.
    A change to either re-renders every page."""
    digest = hashlib.sha256(__version__.encode())
    here = Path(__file__).parent
    for path in sorted([*TEMPLATES.glob("*.j2"), *here.glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
