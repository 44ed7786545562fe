"""Make text from data (prompts, completions, model names) inert inside Markdown.

Decision: characters that could start Markdown or HTML syntax become numeric character
references (``*`` -> ``&#42;``). CommonMark treats references as literal text, never markup, and
GitHub table rows are split on ``|`` *before* references are decoded, so ``&#124;`` can never end a
cell. That is sturdier than backslash escapes, whose meaning changes inside code spans and next to
other backslashes. Data is only ever placed after some template text on a line, so line-start
syntax (``#``, ``>``, ``-``, ``1.``) cannot trigger; newlines become ``<br>`` in table cells and
spaces elsewhere, so data can never start a line. With ``<`` escaped, no HTML (and no copy of the
report's hidden marker comment) can come from data.
"""

from __future__ import annotations

import re

# Inline syntax: HTML and autolinks (< > &), code (`), emphasis (*; _ see below), links, images and
# footnotes ([ ]), tables (|), strikethrough (~), escapes (\\) and GitHub math ($).
_SPECIAL = "&<>`*[]|~\\$"
_BASE: dict[int, str] = {ord(c): f"&#{ord(c)};" for c in _SPECIAL}
# Control characters have no business in a report; line separators Markdown ignores but editors don't.
for _code in [*range(32), 0x7F, 0x85, 0x2028, 0x2029]:
    _BASE[_code] = " "

# Characters whose meaning depends on their neighbours are first marked with private-use code
# points (any already in the data are replaced first), then the one translate() pass expands them:
# - '_' emphasises only at a word boundary; "latency_p95_ms" stays readable in the raw Markdown.
# - On GitHub "@name" notifies a user or team and "#12" cross-references issue 12 (an event there);
#   GitHub looks for those after references are decoded, so a word joiner breaks them instead.
# Each pattern starts with its literal character so the regex engine can skip ahead quickly.
_CONTEXT = (("_", re.compile(r"_(?<![A-Za-z0-9]_)|_(?![A-Za-z0-9])"), "\ue000"),
            ("@", re.compile(r"@(?<!\w@)"), "\ue001"),
            ("#", re.compile(r"#(?=[0-9])"), "\ue002"))
_UNMARK = {0xE000: "&#95;", 0xE001: "@\u2060", 0xE002: "#\u2060"}
_SCRUB = dict.fromkeys(_UNMARK, "\ufffd")
_BASE.update(_UNMARK)

_CELL = dict(_BASE)
_CELL.update({ord("\n"): "<br>", ord("\r"): ""})
_INLINE = dict(_BASE)
_INLINE.update({ord("\n"): " ", ord("\r"): ""})

ELLIPSIS = "…"


class Safe(str):
    """Markdown that is already escaped (or written by us); the template emits it as is."""


def shorten(text: str, limit: int | None) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with an ellipsis when cut."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def inline(text: object, limit: int | None = None) -> Safe:
    """Escape text for a heading or paragraph: one line, no markup."""
    if isinstance(text, Safe):
        return text
    return Safe(_mark(shorten(str(text), limit)).translate(_INLINE))


def cell(text: object, limit: int | None = None) -> Safe:
    """Escape text for a GitHub table cell: newlines become ``<br>``, pipes cannot split the cell."""
    if isinstance(text, Safe):
        return text
    # CRLF counts as one line break, not two.
    return Safe(_mark(shorten(str(text), limit).replace("\r\n", "\n")).translate(_CELL))


def _mark(text: str) -> str:
    if "\ue000" in text or "\ue001" in text or "\ue002" in text:
        text = text.translate(_SCRUB)
    for char, pattern, mark in _CONTEXT:
        if char in text:
            text = pattern.sub(mark, text)
    return text


def marker_token(text: str) -> str:
    """A value that is safe inside the hidden marker comment: no spaces, no '--', no '>'."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "._/@,+-") else "_" for c in text)
    while "--" in cleaned:  # "--" may not appear inside an HTML comment
        cleaned = cleaned.replace("--", "-_")
    return cleaned or "_"
