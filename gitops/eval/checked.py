"""The self-checking dataclasses of the evaluation results document (:mod:`gitops.eval.results`).

Every field is checked against its type hint by the project's one validator
(:mod:`gitops.validation`) in strict mode, its spec derived once from the dataclass: the same spec
validates an object built in code (``__post_init__``) and decodes a JSON document into dataclasses
(``conform``), so the two paths cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, Union

from gitops.errors import EvalError
from gitops.validation import REQUIRED, Field, Invalid, ListOf, MapOf, Record, Scalar, Spec, conform


class ResultsError(EvalError):
    """A results document is malformed: wrong schema version, a missing key, a value of the wrong type."""


# --- specs from type hints -----------------------------------------------------------------------

_SCALARS = {str: "str", int: "int", float: "float", bool: "bool"}


@cache
def spec_of(hint: Any) -> Spec:
    """The validation spec of a type hint; supports what the results shapes use and nothing more."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return dataclasses.replace(spec_of(inner), nullable=True)  # type: ignore[type-var]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record(hint)
    if origin is list:
        return ListOf(spec_of(typing.get_args(hint)[0]))
    if origin is dict:
        return MapOf(spec_of(typing.get_args(hint)[1]))
    return Scalar(_SCALARS[hint])


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _record(cls: type) -> Record:
    fields = {f.name: Field(spec_of(_hints(cls)[f.name]),
                            REQUIRED if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                            else None)
              for f in dataclasses.fields(cls)}
    return Record(fields, what=cls.__name__, build=_Builder(cls), cls=cls, keep_absent=False,
                  unknown="{path} is not a known key of {what} (known: {allowed})", missing="{path} is missing",
                  not_mapping="{path} must be an object ({what}), not {shown}", build_error="{path} {message}")


class _Builder:
    """Builds ``cls``; a value rule it breaks (:class:`ResultsError`) is reported where the record is."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, **kwargs: Any) -> Any:
        try:
            return self.cls(**kwargs)
        except ResultsError as exc:
            raise Invalid(exc.message) from None


class Checked:
    """Mixin: every field is checked against its type hint when the object is built."""

    def __post_init__(self) -> None:
        cls = type(self)
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            try:
                value = conform(spec_of(_hints(cls)[f.name]), getattr(self, f.name), f"{cls.__name__}.{f.name}",  # type: ignore[arg-type]  # a class is hashable
                                decode=False)
            except Invalid as exc:
                raise ResultsError(exc.message) from None
            object.__setattr__(self, f.name, value)
        self._validate()

    def _validate(self) -> None:
        """Value rules beyond types; raise ResultsError with one sentence."""
