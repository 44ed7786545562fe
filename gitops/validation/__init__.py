"""One validation style: structured problems and one small spec validator.

Every document gitops reads (registry files, ``gitops.yaml``, a train config, an evaluation
results document) is checked by walking a *spec* (:class:`Record`, :class:`Scalar`,
:class:`ListOf`, :class:`MapOf`) against the loaded value. What is wrong becomes a
:class:`Problem` (source, line, key, message): errors carry these, nobody splits strings apart
again. Two modes: *collect* every problem with the line it is on (files people edit, so
``gitops check`` lists them all), or *strict*, the first problem raised as :class:`Invalid`
(internal documents that check themselves, like evaluation results).

A dataclass can declare its own spec (:func:`strict`, the idea of huggingface_hub's ``@strict``
dataclasses): its type hints give the types, :func:`checked_field` adds bounds, a rule, help and
an example. The same spec checks an object built in code and decodes a parsed YAML or JSON mapping
into the dataclass (:func:`load`), so the two paths cannot drift apart.

Hand-written on purpose: pydantic's import alone costs ~100 ms of the 0.3 s a ``gitops show``
may take, and the messages matter more than the machinery. Wording lives in the specs.
"""

from gitops.validation.declared import checked_field, load, record_of, spec_of, strict
from gitops.validation.specs import (
                                     REQUIRED,
                                     Check,
                                     Context,
                                     Field,
                                     Invalid,
                                     Key,
                                     ListOf,
                                     MapOf,
                                     Problem,
                                     Problems,
                                     Record,
                                     Scalar,
                                     Spec,
                                     Typed,
                                     conform,
                                     describe,
                                     finite_number,
                                     line_of,
                                     show_json,
                                     show_python,
                                     validate,
)

__all__ = ["REQUIRED", "Check", "Context", "Field", "Invalid", "Key", "ListOf", "MapOf", "Problem", "Problems",
           "Record", "Scalar", "Spec", "Typed", "checked_field", "conform", "describe", "finite_number", "line_of",
           "load", "record_of", "show_json", "show_python", "spec_of", "strict", "validate"]
