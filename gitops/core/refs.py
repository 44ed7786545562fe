"""Names and references: ``MODEL@v7``, ``MODEL@production``, ``reviews@latest``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitops.errors import GitopsError, shown

# Checked with ``fullmatch``: ``re.match`` with ``$`` accepts a trailing newline, and an alias named
# "production\n" once became the file "production\n.yaml".
VERSION_RE = re.compile(r"v[1-9][0-9]*")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ALIAS_RE = re.compile(r"[a-z][a-z0-9._-]{0,63}")
RESERVED_MODEL_NAMES = {"datasets"}
RESERVED_ALIASES = {"latest"}


def is_version(text: str) -> bool:
    return bool(VERSION_RE.fullmatch(text))


def version_number(version: str) -> int:
    return int(version[1:])


def alias_problem(name: str) -> str | None:
    """Why ``name`` cannot be an alias, or None."""
    if is_version(name) or re.fullmatch(r"v[0-9]+", name):
        return f"alias '{shown(name)}' is shaped like a version id; choose a name such as 'staging'"
    if name in RESERVED_ALIASES:
        return f"alias '{name}' is reserved (it always means the newest version)"
    if not ALIAS_RE.fullmatch(name):
        return (f"alias '{shown(name)}' must be lower-case letters, digits, '.', '_' or '-', starting with a "
                "letter (at most 64)")
    return None


def name_problem(name: str, what: str = "model") -> str | None:
    if not NAME_RE.fullmatch(name):
        return f"{what} name '{shown(name)}' must be lower-case letters, digits, '.', '_' or '-' (at most 64)"
    if what == "model" and name in RESERVED_MODEL_NAMES:
        return f"model name '{name}' is reserved"
    return None


@dataclass(frozen=True)
class RefSpec:
    """``name@ref`` as written; ``ref`` is a version id, an alias, ``latest`` or None (the bare name).
    What it names depends on when it is read: resolve it once into a :class:`Ref`."""

    name: str
    ref: str | None = None

    @property
    def is_version(self) -> bool:
        return self.ref is not None and is_version(self.ref)

    def __str__(self) -> str:
        return f"{self.name}@{self.ref}" if self.ref else self.name


@dataclass(frozen=True)
class Ref:
    """One version of one model, resolved: ``Ref("m", "v3")``. An alias or ``latest`` is read
    once, where a plan is made, and pinned to the version it named then; this is what travels."""

    model: str
    version: str

    def __post_init__(self) -> None:
        if not is_version(self.version):
            raise GitopsError(f"'{shown(self.model)}@{shown(self.version)}': a resolved reference names a "
                              "version id (v1, v2, ...)")

    def __str__(self) -> str:
        return f"{self.model}@{self.version}"


def parse_ref(text: str, what: str = "model", require_ref: bool = False) -> RefSpec:
    """Parse ``NAME[@REF]``; errors say what was expected."""
    name, sep, ref = text.partition("@")
    if problem := name_problem(name, what):
        raise GitopsError(f"'{shown(text)}': {problem}")
    if sep and not ref:
        raise GitopsError(f"'{text}': nothing after '@' (expected {name}@v1 or {name}@<alias>)")
    if require_ref and not ref:
        raise GitopsError(f"'{text}': expected {what}@REF, for example {name}@v1 or {name}@production")
    if ref and not is_version(ref) and ref != "latest" and alias_problem(ref):
        raise GitopsError(f"'{shown(text)}': '{shown(ref)}' is neither a version (v1, v2, ...) nor an alias name")
    return RefSpec(name, ref or None)


def maybe_ref(text: str | None, what: str = "model", require_ref: bool = False) -> RefSpec | None:
    """:func:`parse_ref`, or None where ``text`` is not a reference (a hub id, a path, empty): for
    fields that may hold either."""
    if not text:
        return None
    try:
        return parse_ref(text, what, require_ref)
    except GitopsError:
        return None
