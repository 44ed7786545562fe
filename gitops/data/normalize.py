"""Text normalisation a data set may ask for (``normalize:`` in its schema), applied at ingest.

Each step maps a string to a string. Ingest applies the data set's steps, in the order written, to
every string value of a row (the text, the key, every other string column) before the row is
checked for empty text, deduplicated and split, so two rows that differ only in what a step removes
are one row. The steps a data set used are recorded in each version it ingested.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable

from gitops.core.schema import NORMALIZE_STEPS

_SPACES = re.compile(r"\s+")

STEPS: dict[str, Callable[[str], str]] = {
    "html_unescape": html.unescape,            # &amp; &#39; &nbsp; -> & ' (no-break space)
    "strip": str.strip,                        # leading and trailing whitespace, Unicode's definition
    "collapse_whitespace": lambda s: _SPACES.sub(" ", s),  # any run of whitespace (newlines too) -> one space
    "nfc": lambda s: unicodedata.normalize("NFC", s),      # composed Unicode: e + combining acute -> é
}
assert tuple(STEPS) == NORMALIZE_STEPS, "gitops.core.schema.NORMALIZE_STEPS and STEPS must agree"


def normalizer(steps: list[str]) -> Callable[[str], str] | None:
    """One function applying ``steps`` in order, or None when there are none (the common case)."""
    if not steps:
        return None
    funcs = [STEPS[s] for s in steps]

    def apply(text: str) -> str:
        for func in funcs:
            text = func(text)
        return text

    return apply
