"""The specs: structured problems and one small validator walking a spec over a loaded value
(re-exported by :mod:`gitops.validation`, which describes them)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gitops.errors import Problem, shown
from gitops.yamlio import LineMap, plain

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
"""The default of a :class:`Field` that must be present."""


def line_of(node: Any, key: Any = None) -> int | None:
    """The line of ``key`` in a loaded mapping (or of the mapping itself), when the loader knew it."""
    if isinstance(node, LineMap):
        return node.key_lines.get(key, node.line) if key is not None else node.line
    return None


class Problems(list):
    """Problems found while validating, in the order found."""

    def add(self, source: str, node: Any, key: Any, message: str) -> None:
        """Record ``message``; the line is that of ``key`` in ``node`` (or of ``node``)."""
        self.append(Problem(source, line_of(node, key), None if key is None else str(key), message))

    def messages(self) -> list[str]:
        return [p.message for p in self]


class Invalid(Exception):
    """A value does not fit its spec. ``node``/``key`` locate it in the loaded document."""

    def __init__(self, message: str, node: Any = None, key: Any = None, path: str = "") -> None:
        super().__init__(message)
        self.message, self.node, self.key, self.path = message, node, key, path


def show_python(value: Any) -> str:
    """How a wrong value reads in messages about YAML a person wrote: ``str 'four'``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list {_short(repr(value))}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"int {shown(value, 40)}"  # repr() of a 5,000-digit int raises
    return f"{type(value).__name__} {_short(repr(value))}"


def show_json(value: Any) -> str:
    """How a wrong value reads in messages about a JSON document: as JSON (``7``, ``null``, ``"x"``)."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return type(value).__name__
    if isinstance(value, int) and not isinstance(value, bool):
        return shown(value, 40)
    return _short(json.dumps(value, default=str))


_FLOAT_MAX_INT = int(sys.float_info.max)


def finite_number(value: Any) -> bool:
    """A finite int or float, not a bool, that ``float()`` can hold: a 400-digit int is not one
    (``math.isfinite`` would raise OverflowError on it)."""
    if value.__class__ is float:
        return math.isfinite(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return -_FLOAT_MAX_INT <= value <= _FLOAT_MAX_INT
    return math.isfinite(value)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(key: Any, limit: int = 80) -> str:
    return shown(key, limit)


@dataclass
class Context:
    """Where problems go (``problems`` collects; None raises the first) and how values read."""

    source: str = ""
    problems: Problems | None = None
    show: Callable[[Any], str] = show_python
    null_reads_empty: bool = True  # YAML: an empty value; JSON: null
    decode: bool = True  # False: a record's value must already be its built object, not a mapping

    def report(self, exc: Invalid) -> None:
        if self.problems is None:
            raise exc
        self.problems.add(self.source, exc.node, exc.key, exc.message)


class Spec:
    """What a value must be. :meth:`conform` returns the value normalised, or raises :class:`Invalid`."""

    nullable = False

    def conform(self, value: Any, path: str, ctx: Context, node: Any = None, key: Any = None) -> Any:
        raise NotImplementedError


def _null(spec: Spec, label: str, path: str, ctx: Context, node: Any, key: Any) -> Invalid:
    if ctx.null_reads_empty:
        return Invalid(f"{path} must not be empty (expected {label})", node, key, path)
    return Invalid(f"{path} must be {label}, not null", node, key, path)


@dataclass(frozen=True)
class Scalar(Spec):
    """A str, int, float (finite; ints become floats) or bool, with optional rules.

    ``rule(value)`` returns why a well-typed value is still wrong (or None; the message is prefixed
    with the record the value is in, or with its own key when ``say_path``); ``parse_text`` turns a
    string into the type first when it can (a float written as ``1e-4``, which YAML reads as text).
    """

    kind: str  # "str", "int", "float", "number" (int or float, kept as is), "bool"
    label: str = ""
    nullable: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    non_empty: bool = False
    rule: Callable[[Any], str | None] | None = None
    parse_text: Callable[[str], Any] | None = None
    say_path: bool = False  # a rule's message starts with the value's own dotted key, not its record's

    def __post_init__(self) -> None:
        # a plain string field checks nothing beyond its type: the common case, kept short
        plain = self.kind == "str" and not (self.non_empty or self.choices or self.rule or self.parse_text)
        object.__setattr__(self, "_plain_str", plain)

    def conform(self, value: Any, path: str, ctx: Context, node: Any = None, key: Any = None) -> Any:
        if self._plain_str and value.__class__ is str:  # type: ignore[attr-defined]
            return value
        if value is None:
            if self.nullable:
                return None
            raise _null(self, self.label or _LABELS[self.kind], path, ctx, node, key)
        kind = self.kind
        if self.parse_text is not None and isinstance(value, str):
            value = self.parse_text(value)
        if kind == "str":
            ok = isinstance(value, str) and (value != "" or not self.non_empty)
        elif kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:  # float / number
            ok = finite_number(value)
            if ok and kind == "float":
                value = float(value)
        if not ok:
            label = self.label or _LABELS[kind]
            or_null = " or null" if self.nullable and not ctx.null_reads_empty else ""
            raise Invalid(f"{path} must be {label}{or_null}, not {ctx.show(value)}", node, key, path)
        if self.choices is not None and value not in self.choices:
            raise Invalid(f"{path} must be one of {', '.join(map(str, self.choices))}, not '{shown(value)}'",
                          node, key, path)
        if self.minimum is not None and value < self.minimum:
            raise Invalid(f"{path} must be at least {_num(self.minimum)}, not {shown(value)}", node, key, path)
        if self.maximum is not None and value > self.maximum:
            raise Invalid(f"{path} must be at most {_num(self.maximum)}, not {shown(value)}", node, key, path)
        if self.rule is not None and (why := self.rule(value)):
            record = path if self.say_path else path.rsplit(".", 1)[0] if "." in path else ""
            raise Invalid(f"{record}: {why}" if record else why, node, key, path)
        return value


_LABELS = {"str": "a string", "int": "a whole number", "float": "a finite number", "number": "a number",
           "bool": "true or false"}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Typed(Spec):
    """Any value of the given Python types, taken as plain data (a free-form ``config:`` mapping)."""

    types: tuple[type, ...]
    label: str
    nullable: bool = False

    def conform(self, value: Any, path: str, ctx: Context, node: Any = None, key: Any = None) -> Any:
        if value is None and self.nullable:
            return None
        if not isinstance(value, self.types):
            raise Invalid(f"{path} must be {self.label}, not {ctx.show(value)}", node, key, path)
        return plain(value)


@dataclass(frozen=True)
class ListOf(Spec):
    """A list whose items fit ``item`` (``single`` accepts one bare item as a list of one)."""

    item: Spec
    label: str = "a list"
    nullable: bool = False
    non_empty: bool = False
    single: bool = False
    say: str = "{path} must be {label}, not {shown}"
    each: bool = False  # collect mode: every bad item is a problem (None in the list), not the first only

    def conform(self, value: Any, path: str, ctx: Context, node: Any = None, key: Any = None) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise _null(self, self.label, path, ctx, node, key)
        if self.single and not isinstance(value, (list, tuple)):
            value = [value]
        if not isinstance(value, (list, tuple)) or (self.non_empty and not value):
            raise Invalid(self.say.format(path=path, label=self.label, shown=ctx.show(value)), node, key, path)
        if not self.each:
            return [self.item.conform(v, f"{path}[{i}]", ctx, node, key) for i, v in enumerate(value)]
        out = []
        for i, v in enumerate(value):
            try:
                out.append(self.item.conform(v, f"{path}[{i}]", ctx, node, key))
            except Invalid as exc:
                ctx.report(exc)
                out.append(None)
        return out


@dataclass(frozen=True)
class MapOf(Spec):
    """A mapping of non-empty string keys to values that fit ``value``."""

    value: Spec
    label: str = "an object"
    nullable: bool = False

    def conform(self, value: Any, path: str, ctx: Context, node: Any = None, key: Any = None) -> Any:
        if value is None and self.nullable:
            return None
        if not isinstance(value, dict):
            raise Invalid(f"{path} must be {self.label}, not {ctx.show(value)}", node, key, path)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not k:
                raise Invalid(f"{path} keys must be non-empty strings, not {ctx.show(k)}", node, key, path)
            out[k] = self.value.conform(v, f"{path}.{k}", ctx, value, k)
        return out


@dataclass(frozen=True)
class Check(Spec):
    """Any value, checked by a function: ``check(value)`` returns why it is wrong (a sentence, or a
    list of them: each is a problem) or None. For values whose checks are older than the types (a
    URL, an environment variable's name, a payload template), where the sentence says the type too.
    ``say`` frames each reason (``{path}``, ``{record}``, ``{why}``, ``{shown}``); ``convert`` turns
    an accepted value into what the record holds; ``label`` is its type in the reference."""

    check: Callable[[Any], str | list[str] | None]
    say: str = "{path} {why}"
    label: str = ""
    nullable: bool = False
    convert: Callable[[Any], Any] | None = None

    def conform(self, value: Any, path: str, ctx: Context, node: Any = None, key: Any = None) -> Any:
        if value is None and self.nullable:
            return None
        whys = self.check(value)
        if whys:
            record = path.rsplit(".", 1)[0] if "." in path else path
            said = [self.say.format(path=path, record=record, why=why, shown=shown(value))
                    for why in ([whys] if isinstance(whys, str) else whys)]
            for message in said[:-1]:
                ctx.report(Invalid(message, node, key, path))
            raise Invalid(said[-1], node, key, path)
        return self.convert(value) if self.convert is not None else value


@dataclass(frozen=True)
class Field:
    """One key of a :class:`Record`: its spec, default (:data:`REQUIRED` when it must be there), help,
    and an example value (docs/reference.md is generated from these)."""

    spec: Spec
    default: Any = None
    help: str = ""
    example: Any = None


@dataclass(frozen=True)
class Key:
    """One key of a file that is checked by hand rather than by a :class:`Record`, as the reference
    (docs/reference.md) shows it. ``path`` is dotted (``gates[].metric``: a key of each item of a
    list; ``versions.<vN>``: a mapping's own keys); ``type`` starts with string, integer, number,
    boolean, list, mapping or owner; ``default`` is :data:`REQUIRED` or its text; ``example`` is a
    value as YAML would give it. tests/test_reference.py holds every table to its checker."""

    path: str
    type: str
    default: Any
    example: Any
    meaning: str


def describe(spec: Spec) -> str:
    """The type of a spec as the reference writes it (``integer, 1 to 4096``; ``string or null``)."""
    nullable = " or null" if spec.nullable else ""
    if isinstance(spec, Scalar) and type(spec) is not Scalar and spec.label:  # a Scalar that checks its own way
        return spec.label.removeprefix("a ").removeprefix("an ") + nullable
    if isinstance(spec, Scalar):
        text = {"str": "string", "int": "integer", "float": "number", "number": "number", "bool": "boolean"}[spec.kind]
        if spec.choices:
            text += ": " + " or ".join(f"`{c}`" for c in spec.choices)
        if spec.minimum is not None and spec.maximum is not None:
            text += f", {_num(spec.minimum)} to {_num(spec.maximum)}"
        elif spec.minimum is not None:
            text += f", at least {_num(spec.minimum)}"
        return text + ("," if "," in text and nullable else "") + nullable
    if isinstance(spec, ListOf):
        item = describe(spec.item)
        item += "s" if item in ("string", "integer", "number", "boolean") else ""
        return f"list of {item}" + (" (or one)" if spec.single else "") + nullable
    if isinstance(spec, MapOf):
        return f"mapping of name to {describe(spec.value)}" + nullable
    if isinstance(spec, (Typed, Check)):
        return spec.label.removeprefix("a ").removeprefix("an ") + nullable
    return "mapping" + nullable


@dataclass(frozen=True)
class Record(Spec):
    """A mapping with known keys. Nested records are fields whose spec is a Record.

    The message templates may use ``{key}`` (the bare key), ``{path}`` (dotted from the document
    root), ``{record}`` (the record's own path, or ``what`` at the root), ``{what}``, ``{allowed}``
    (its keys) and ``{shown}`` (the wrong value). ``build`` turns the conformed dict into an object
    (a dataclass): an object already built passes as it is, an :class:`Invalid` the build raises
    is reported at the record (``build_error``). In collect mode a record with problems conforms
    to None. ``keep_absent=False`` leaves absent optional keys out, so ``build``'s own defaults apply.
    """

    fields: Mapping[str, Field]
    what: str = ""
    nullable: bool = False
    build: Callable[..., Any] | None = None
    cls: type | None = None  # the type ``build`` makes
    unknown: str = "unknown key '{path}' (allowed here: {allowed})"
    missing: str = "missing required key '{path}'"
    not_mapping: str = "'{path}' must be a mapping with keys: {allowed}"
    build_error: str = "{message}"
    keep_absent: bool = True
    forbidden: Mapping[str, str] | None = None  # keys refused with their own sentence (a secret written inline)
    null_is_empty: bool = True  # False: a null where the mapping should be is not_mapping, not an empty one
    closed: bool = False  # an unknown key makes it not this record: not_mapping's sentence, at the record
    partial: bool = False  # collect mode: the keys that conformed, even when others did not (for checks across keys)

    def _say(self, template: str, path: str, key: Any, field_path: str, shown: str = "") -> str:
        return template.format(path=_clip(field_path, 120), key=_clip(key), what=self.what,
                               record=_clip(path, 120) or self.what, allowed=", ".join(self.fields), shown=shown)

    def conform(self, value: Any, path: str, ctx: Context, node: Any = None, key: Any = None) -> Any:
        if value is None:
            if self.nullable:
                return None
            if self.null_is_empty:
                value = LineMap()
        if self.cls is not None and isinstance(value, self.cls):
            return value
        if not isinstance(value, dict) or (not ctx.decode and self.cls is not None):
            raise Invalid(self._say(self.not_mapping, path, key, path, ctx.show(value)), node, key, path)
        fields = self.fields
        if self.closed and any(k not in fields for k in value):
            raise Invalid(self._say(self.not_mapping, path, key, path, ctx.show(value)), node, key, path)
        prefix = f"{path}." if path else ""
        problems = ctx.problems
        before = len(problems) if problems is not None else 0
        for k in value:
            if self.forbidden and k in self.forbidden:
                ctx.report(Invalid(self._say(self.forbidden[k], path, k, f"{prefix}{k}"), value, k, f"{prefix}{k}"))
            elif k not in fields:
                ctx.report(Invalid(self._say(self.unknown, path, k, f"{prefix}{k}"), value, k, f"{prefix}{k}"))
        out: dict[str, Any] = {}
        for name, f in fields.items():
            if name in value:
                try:
                    out[name] = f.spec.conform(value[name], prefix + name, ctx, value, name)
                except Invalid as exc:
                    ctx.report(exc)
            elif f.default is REQUIRED:
                ctx.report(Invalid(self._say(self.missing, path, name, prefix + name), value, None, prefix + name))
            elif self.keep_absent:
                out[name] = (f.spec.conform(None, prefix + name, ctx, value, name) if isinstance(f.spec, Record)
                             else _fresh(f.default))
        if problems is not None and len(problems) != before:
            return out if self.partial and self.build is None else None
        if self.build is None:
            return out
        try:
            return self.build(**out)
        except Invalid as exc:
            message = self.build_error.format(path=path, message=exc.message).strip()
            raise Invalid(message, node, key, path) from None

    def defaults(self) -> dict[str, Any]:
        """Every key with its default (nested records too); required keys are None."""
        return {k: (f.spec.defaults() if isinstance(f.spec, Record) else
                    (None if f.default is REQUIRED else _fresh(f.default))) for k, f in self.fields.items()}

    def leaves(self, prefix: str = "") -> list[tuple[str, Field]]:
        """(dotted key, field) for every leaf, in order (what docs are written from)."""
        rows: list[tuple[str, Field]] = []
        for k, f in self.fields.items():
            if isinstance(f.spec, Record):
                rows += f.spec.leaves(f"{prefix}{k}.")
            else:
                rows.append((f"{prefix}{k}", f))
        return rows


def _fresh(default: Any) -> Any:
    return list(default) if isinstance(default, list) else dict(default) if isinstance(default, dict) else default


def validate(spec: Spec, value: Any, source: str, problems: Problems, *, path: str = "",
             show: Callable[[Any], str] = show_python, node: Any = None, key: Any = None) -> Any:
    """Collect mode: every problem of ``value`` goes to ``problems``; returns the conformed value
    (None when the top level itself is wrong). ``node``/``key``: where ``value`` is in its document
    (``value`` is ``node[key]``), for the line of a problem with the value as a whole."""
    ctx = Context(source, problems, show)
    try:
        return spec.conform(value, path, ctx, node, key)
    except Invalid as exc:
        ctx.report(exc)
        return None


def conform(spec: Spec, value: Any, path: str = "", *, show: Callable[[Any], str] = show_json,
            decode: bool = True) -> Any:
    """Strict mode: the conformed value, or :class:`Invalid` for the first problem. ``decode=False``:
    values of records must already be built objects (checking an object made in code)."""
    return spec.conform(value, path, Context("", None, show, null_reads_empty=False, decode=decode))


__all__ = ["REQUIRED", "Check", "Context", "Field", "Invalid", "Key", "ListOf", "MapOf", "Problem", "Problems",
           "Record", "Scalar", "Spec", "Typed", "conform", "describe", "finite_number", "line_of", "show_json",
           "show_python", "validate"]
