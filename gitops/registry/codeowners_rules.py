"""CODEOWNERS as GitHub reads it: gitignore-like patterns, the last matching line wins.

GitHub's rules (docs: "About code owners", syntax section), and how they map to a regex here:

- a pattern without a slash, or with only a trailing one, matches at any depth (``*.js``, ``apps/``);
  one with a slash at the start or in the middle is anchored at the repository root (``/docs``,
  ``docs/*``, ``apps/github``);
- a pattern that names a directory owns everything beneath it (``/build/logs/``, ``apps/github``);
  a trailing slash means "directories only";
- ``*`` matches within one path segment; ``**`` across segments (``**/logs``, ``docs/**``);
- unlike gitignore, a final segment with a wildcard does not descend: ``docs/*`` owns
  ``docs/a.md`` but not ``docs/build/a.md`` (GitHub's documented example);
- ``!`` negation, ``[ ]`` ranges and ``\\#`` escapes are not supported: GitHub skips such lines
  (listed in :attr:`Codeowners.problems`, as its codeowners/errors endpoint reports them);
- a line with a pattern and no owners makes matching files unowned;
- paths are case-sensitive.

Patterns come from files a pull request may edit, so they are matched on the linear-time engine
(:mod:`gitops.saferegex`): ``*a*a*a*a*a*a*a*a*b`` took seconds a path on Python's ``re``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gitops.saferegex import LinearPattern, PatternError, compile_linear

LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")  # GitHub's search order


@dataclass(frozen=True)
class Rule:
    pattern: str
    owners: tuple[str, ...]
    line: int
    regex: LinearPattern


@dataclass
class Codeowners:
    rules: list[Rule] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    source: str = ".github/CODEOWNERS"

    def rule_for(self, path: str) -> Rule | None:
        """The rule that decides ``path``'s owners: the last one that matches."""
        path = path.lstrip("/")
        for rule in reversed(self.rules):
            if rule.regex.fullmatch(path):
                return rule
        return None

    def owners_of(self, path: str) -> list[str]:
        rule = self.rule_for(path)
        return list(rule.owners) if rule else []


def _glob(text: str) -> str:
    """Translate the glob part of a pattern (no leading/trailing slash) to a regex."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif text.startswith("**", i):
            out.append(".*")
            i += 2
        elif text[i] == "*":
            out.append("[^/]*")
            i += 1
        elif text[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(text[i]))
            i += 1
    return "".join(out)


def compile_pattern(pattern: str) -> LinearPattern:
    """The regex a file path (relative, no leading slash) must match to be owned by ``pattern``
    (anchored at both ends; :class:`~gitops.saferegex.PatternError` when too large to compile)."""
    dir_only = pattern.endswith("/")
    body = pattern.strip("/")
    anchored = pattern.startswith("/") or "/" in body
    prefix = "^" if anchored else "^(?:.*/)?"
    last = body.rsplit("/", 1)[-1]
    if dir_only:
        suffix = "/.*$"
    elif last == "**":
        suffix = "$"
    elif "*" in last or "?" in last:
        suffix = "$"  # GitHub: `docs/*` does not descend into docs/build/
    else:
        suffix = "(?:/.*)?$"  # a file, or a directory and everything beneath it
    return compile_linear(prefix + _glob(body) + suffix)


def _strip_comment(line: str) -> str:
    # A '#' starts a comment at the start of a line or after whitespace.
    match = re.search(r"(^|\s)#", line)
    return line[: match.start()] if match else line


def parse(text: str, source: str = ".github/CODEOWNERS") -> Codeowners:
    """Parse CODEOWNERS text; unsupported lines are skipped and recorded, as GitHub does."""
    result = Codeowners(source=source)
    for number, raw in enumerate(text.splitlines(), 1):
        fields = _strip_comment(raw).split()
        if not fields:
            continue
        pattern, owners = fields[0], tuple(fields[1:])
        if pattern.startswith(("!", "\\#")) or "[" in pattern:
            result.problems.append(f"{source}:{number}: pattern '{pattern}' uses syntax GitHub does not "
                                   "support (negation, [ ] ranges or an escaped #); the line is ignored")
            continue
        if "***" in pattern:
            result.problems.append(f"{source}:{number}: invalid pattern '{pattern}'; the line is ignored")
            continue
        try:
            regex = compile_pattern(pattern)
        except PatternError:
            result.problems.append(f"{source}:{number}: pattern '{pattern[:200]}' is too large to match; the line "
                                   "is ignored")
            continue
        result.rules.append(Rule(pattern, owners, number, regex))
    return result
