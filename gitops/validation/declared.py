"""Strict dataclasses: a record declared by its class (re-exported by :mod:`gitops.validation`)."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar, Union, dataclass_transform, overload

from gitops.validation.specs import (
    REQUIRED,
    Context,
    Field,
    Invalid,
    ListOf,
    MapOf,
    Problems,
    Record,
    Scalar,
    Spec,
    conform,
    show_json,
    validate,
)

T = TypeVar("T")
_SCALARS = {str: "str", int: "int", float: "float", bool: "bool"}
_BUILT = Context("", None, show_json, null_reads_empty=False, decode=False)  # an object made in code: strict


def checked_field(spec: Spec | None = None, *, default: Any = dataclasses.MISSING,
                  default_factory: Any = dataclasses.MISSING, help: str = "", example: Any = None) -> Any:
    """A field of a :func:`strict` dataclass: ``spec`` (bounds, a rule, a label) instead of the one its
    type hint gives, and the help and example docs/reference.md shows."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"spec": spec, "help": help, "example": example})


@overload
def strict(cls: type[T], /) -> type[T]: ...


@overload
def strict(*, error: type[Exception] = ValueError, **messages: Any) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(field_specifiers=(dataclasses.field, checked_field))
def strict(cls: type | None = None, *, error: type[Exception] = ValueError, **messages: Any) -> Any:
    """Class decorator (after huggingface_hub's ``@strict``): the class, made a dataclass unless it is
    one, checks every field against its spec whenever an object is built, then runs its
    ``validate_*`` methods (rules across fields; they raise ``error``). A bad field raises ``error``
    with one sentence naming ``Class.field``. ``messages`` are :class:`Record`'s options (``unknown``,
    ``missing``, ``not_mapping``, ``build_error``, ``forbidden``, ``closed``...) for documents decoded
    with :func:`load`. A field holding its declared default is not checked again (a default of None
    where a document may not write null)."""

    def wrap(cls: type) -> type:
        if not dataclasses.is_dataclass(cls):
            cls = dataclass(cls)
        rules = [f for name, f in vars(cls).items() if name.startswith("validate_") and callable(f)]
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807 - it replaces the class's own
            init(self, *args, **kwargs)
            record = record_of(type(self))  # type: ignore[arg-type]
            for name, f in record.fields.items():
                if getattr(self, name) is f.default:  # a declared default is trusted (None where null is refused)
                    continue
                try:
                    value = f.spec.conform(getattr(self, name), f"{record.what}.{name}", _BUILT)
                except Invalid as exc:
                    raise error(getattr(exc, "message", str(exc))) from None
                object.__setattr__(self, name, value)
            for rule in rules:
                rule(self)

        cls.__init__ = __init__  # type: ignore[method-assign]
        cls.__strict__ = (error, messages)  # type: ignore[attr-defined]
        return cls

    return wrap if cls is None else wrap(cls)


@cache
def spec_of(hint: Any) -> Spec:
    """The spec of a type hint: str, int, float, bool, ``X | None``, ``list[X]``, ``dict[str, X]``, or a
    :func:`strict` dataclass; nothing more (what the declared records use)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return dataclasses.replace(spec_of(inner), nullable=True)  # type: ignore[type-var]
    if isinstance(hint, type) and hasattr(hint, "__strict__"):
        return record_of(hint)
    if origin is list:
        return ListOf(spec_of(typing.get_args(hint)[0]))
    if origin is dict:
        return MapOf(spec_of(typing.get_args(hint)[1]))
    return Scalar(_SCALARS[hint])


@cache
def record_of(cls: type) -> Record:
    """The :class:`Record` a :func:`strict` dataclass declares (built once, on first use, when every
    class its hints name exists)."""
    error, messages = cls.__strict__  # type: ignore[attr-defined]
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = REQUIRED
        spec = f.metadata.get("spec") or spec_of(hints[f.name])
        fields[f.name] = Field(spec, default, f.metadata.get("help", ""), f.metadata.get("example"))
    return Record(fields, what=cls.__name__, build=_Builder(cls, error), cls=cls, keep_absent=False, **messages)


class _Builder:
    """Builds ``cls``; a rule it breaks (``error``) is reported where the record is."""

    def __init__(self, cls: type, error: type[Exception]) -> None:
        self.cls, self.error = cls, error

    def __call__(self, **kwargs: Any) -> Any:
        try:
            return self.cls(**kwargs)
        except self.error as exc:
            raise Invalid(getattr(exc, "message", str(exc))) from None


def load(cls: type, value: Any, source: str = "", problems: Problems | None = None, *, path: str = "") -> Any:
    """Decode a parsed mapping into the :func:`strict` dataclass ``cls``. With ``problems`` every
    problem is collected there, with its line (None when there were any); without, the first raises
    :class:`Invalid` (JSON wording: an internal document)."""
    if problems is None:
        return conform(record_of(cls), value, path)
    return validate(record_of(cls), value, source, problems, path=path)


__all__ = ["checked_field", "load", "record_of", "spec_of", "strict"]
