"""Regular expressions taken from files people edit, run in linear time (RE2).

Python's ``re`` backtracks: ``(\\w+\\s?)+\\d`` takes seconds on a six-word text and ``^(.|.)*q$``
forever, and a match cannot be interrupted (it holds the GIL), so a rule from ``model.yaml`` or a
pattern from CODEOWNERS could freeze a server or a required check. Every such pattern compiles
here, on Google's RE2 (``google-re2`` on PyPI): matching is linear in the text, compiling is
bounded in memory, and the constructs that need backtracking are refused when the file is
checked, with one sentence naming the construct:

- lookahead and lookbehind ``(?=``, ``(?!``, ``(?<=``, ``(?<!``;
- backreferences ``\\1``, ``(?P=name)``; atomic groups ``(?>``; possessive ``*+``, ``++``, ``?+``;
- conditionals ``(?(1)...)``, comments ``(?#...)``, the flags ``(?x)``, ``(?a)``, ``(?u)``, ``(?L)``;
- ``\\Z`` (write ``\\z``), ``\\u``/``\\U``/``\\N{...}`` escapes (write the character), counted
  repetition over 1000.

One difference stays silent: in RE2, ``\\w``, ``\\d``, ``\\s`` and ``\\b`` are ASCII (Python's are
Unicode); ``\\pL`` is any letter. Texts and patterns holding a lone surrogate (which UTF-8 cannot
carry) are matched with it replaced by U+FFFD.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

MAX_PATTERN_CHARS = 64 * 1024  # a task's rule is bounded lower (1,000) by its own schema
MAX_PROGRAM_BYTES = 8 << 20  # RE2's own default: a pattern whose automaton needs more is refused
_SURROGATES = re.compile("[\ud800-\udfff]")
# What RE2's parser names, and how a person reads it: (construct, True when it needs backtracking).
_LACKS = (("(?<=", "a lookbehind"), ("(?<!", "a lookbehind"), ("(?=", "a lookahead"), ("(?!", "a lookahead"),
          ("(?P=", "a backreference"), ("(?>", "an atomic group"), ("(?(", "a conditional group"),
          ("(?P>", "a recursive group"))
_SYNTAX = {"(?#": ("a comment group '(?#...)'", "remove it"), "Z": ("'\\Z'", "write '\\z'"),
           "u": ("a '\\u' escape", "write the character itself"), "U": ("a '\\U' escape", "write the character itself"),
           "N": ("a '\\N{...}' escape", "write the character itself")}


class PatternError(ValueError):
    """A pattern that cannot run in linear time, or does not compile; ``str()`` is the reason."""


class LinearPattern:
    """A compiled pattern: ``search``/``fullmatch`` answer whether it matches, in linear time."""

    def __init__(self, pattern: str, ignore_case: bool) -> None:
        self.pattern, self.ignore_case = pattern, ignore_case
        self._re2 = _compile_re2(pattern, ignore_case)

    def search(self, text: str) -> bool:
        return self._re2.search(_utf8_safe(text)) is not None

    def match(self, text: str) -> bool:
        """Whether the pattern matches at the start of ``text``."""
        return self._re2.match(_utf8_safe(text)) is not None

    def fullmatch(self, text: str) -> bool:
        return self._re2.fullmatch(_utf8_safe(text)) is not None

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r}, ignore_case={self.ignore_case})"


@lru_cache(maxsize=4096)
def compile_linear(pattern: str, ignore_case: bool = False) -> LinearPattern:
    """``pattern`` compiled on RE2 (cached); :class:`PatternError` says why it cannot be."""
    return LinearPattern(pattern, ignore_case)


def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used (one clause, for a message like "regex 'x' ..."), or None."""
    try:
        compile_linear(pattern, True)
    except PatternError as exc:
        return str(exc)
    return None


def _utf8_safe(text: str) -> str:
    return _SURROGATES.sub("\ufffd", text) if not text.isascii() else text


def _re2() -> Any:
    try:
        import re2
    except ImportError:  # a dependency of the package; only a broken install lacks it
        raise PatternError("needs the google-re2 package to run in linear time (pip install google-re2)") from None
    return re2


def _compile_re2(pattern: str, ignore_case: bool) -> Any:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"is longer than {MAX_PATTERN_CHARS} characters")
    re2 = _re2()
    options = re2.Options()
    options.log_errors = False  # RE2 would write its own line to stderr; the reason is raised instead
    options.case_sensitive = not ignore_case
    options.max_mem = MAX_PROGRAM_BYTES
    try:
        return re2.compile(_utf8_safe(pattern), options)
    except re2.error as exc:
        raise PatternError(_reason(pattern, exc)) from None


def _reason(pattern: str, exc: Exception) -> str:
    raw = exc.args[0] if exc.args else str(exc)
    detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    op = detail.rsplit(":", 1)[-1].strip()
    if backtracking := _backtracking(pattern, detail, op):
        return (f"uses {backtracking}, which needs backtracking: the linear-time engine (RE2) refuses it; "
                "rewrite the rule without it")
    if syntax := _syntax(detail, op):
        return f"uses {syntax[0]}, which the linear-time engine (RE2) does not know; {syntax[1]}"
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as py_exc:
        return f"does not compile ({py_exc})"
    if "too large" in detail or "repetition size" in detail:
        return f"is too large for the linear-time engine ({detail}); use smaller counted repetitions"
    return f"cannot run on the linear-time engine, RE2 ({detail})"


def _backtracking(pattern: str, detail: str, op: str) -> str | None:
    """The backtracking construct RE2's message points at, named for a person."""
    if "invalid perl operator" in detail:
        for prefix, name in _LACKS:
            if op.startswith(prefix) or (prefix.startswith(op) and prefix in pattern):
                return f"{name} '{prefix}'"
    if "bad repetition operator" in detail and op[-1:] == "+":
        return f"a possessive quantifier '{op}'"
    if "invalid escape sequence" in detail and op[1:2].isdigit():
        return f"a backreference '{op}'"
    return None


def _syntax(detail: str, op: str) -> tuple[str, str] | None:
    """Python syntax RE2 lacks that needs no backtracking: what to write instead."""
    if "invalid perl operator" in detail:
        if op.startswith("(?#"):
            return _SYNTAX["(?#"]
        if op.startswith("(?") and op[2:3] in ("x", "a", "L", "u"):
            return f"the inline flag '(?{op[2]}'", "leave it out"
    if "invalid escape sequence" in detail:
        return _SYNTAX.get(op[1:2])
    return None
