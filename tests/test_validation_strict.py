"""The one validation style: strict dataclasses (:func:`gitops.validation.strict`) and the spec pieces
the hand-written checks became (Check, Record.forbidden/closed/partial, ListOf.each)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gitops import yamlio
from gitops.core import promptspec, schema, settings, task
from gitops.errors import ConfigError
from gitops.validation import (
    REQUIRED,
    Check,
    Field,
    Invalid,
    ListOf,
    Problems,
    Record,
    Scalar,
    checked_field,
    load,
    record_of,
    strict,
    validate,
)


class ShapeError(Exception):
    pass


@strict(error=ShapeError)
@dataclass
class Point:
    x: int
    y: int = checked_field(Scalar("int", minimum=0, maximum=9), default=0, help="Height.", example=3)
    tags: list[str] = field(default_factory=list)

    def validate_not_origin(self) -> None:
        if self.x == 0 and self.y == 0:
            raise ShapeError("a point is never the origin")


@strict(error=ShapeError, unknown="{path} is not a key of {what}", missing="{path} is missing")
@dataclass
class Route:
    points: list[Point]
    name: str | None = None


def test_an_object_built_in_code_is_checked_field_by_field_then_by_its_rules() -> None:
    assert Point(x=1, y=2) == Point(1, 2, [])
    with pytest.raises(ShapeError, match=r'^Point.x must be a whole number, not "a"$'):
        Point(x="a")  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"^Point.y must be at most 9, not 10$"):
        Point(x=1, y=10)
    with pytest.raises(ShapeError, match="never the origin"):
        Point(x=0)
    with pytest.raises(ShapeError, match=r"Route.points\[0\]"):
        Route(points=[{"x": 1}])  # type: ignore[list-item]  # a mapping is not a built Point


def test_the_spec_is_declared_by_the_class() -> None:
    spec = record_of(Point)
    assert list(spec.fields) == ["x", "y", "tags"]
    assert spec.fields["x"].default is REQUIRED and spec.fields["y"].default == 0 and spec.fields["tags"].default == []
    assert (spec.fields["y"].help, spec.fields["y"].example) == ("Height.", 3)


def test_a_mapping_decodes_into_the_dataclasses_or_names_the_key() -> None:
    path = load(Route, {"points": [{"x": 1}, {"x": 2, "y": 3, "tags": ["a"]}]})
    assert path == Route(points=[Point(1), Point(2, 3, ["a"])])
    with pytest.raises(Invalid, match=r"^unknown key 'points\[1\].colour' \(allowed here: x, y, tags\)$"):
        load(Route, {"points": [{"x": 1}, {"x": 2, "colour": "red"}]})  # each class its own sentences
    with pytest.raises(Invalid, match=r"^extra is not a key of Route$"):
        load(Route, {"points": [], "extra": 1})
    with pytest.raises(Invalid, match=r"^points is missing$"):
        load(Route, {})
    with pytest.raises(Invalid, match="never the origin"):
        load(Route, {"points": [{"x": 0}]})


def test_collect_mode_lists_every_problem_with_its_line() -> None:
    doc = yamlio.loads("points:\n  - x: 1\n    y: 12\n  - x: nope\nname: 3\n", "path.yaml")
    p = Problems()
    assert load(Route, doc, "path.yaml", p) is None
    assert [(x.line, x.key) for x in p] == [(3, "y"), (4, "x"), (5, "name")]
    assert p.messages()[0] == "points[0].y must be at most 9, not 12"


def test_a_check_may_give_several_reasons_and_convert_what_it_accepts() -> None:
    def reasons(v: object) -> list[str]:
        return [f"'{x}' is odd" for x in v if x % 2]  # type: ignore[attr-defined]

    spec = Record({"n": Field(Check(reasons, "{path}: {why}", convert=sum), REQUIRED)})
    p = Problems()
    assert validate(spec, yamlio.loads("n: [1, 2, 3]\n", "f"), "f", p) is None
    assert p.messages() == ["n: '1' is odd", "n: '3' is odd"]
    assert validate(spec, {"n": [2, 4]}, "f", Problems()) == {"n": 6}


def test_forbidden_closed_partial_and_each() -> None:
    inner = Record({"a": Field(Scalar("int"), REQUIRED)}, not_mapping="{path} must be a mapping",
                   null_is_empty=False)
    spec = Record({"items": Field(ListOf(inner, each=True), REQUIRED), "b": Field(Scalar("int"), 0)},
                  forbidden={"secret": "{record}: never a secret here"}, partial=True)
    p = Problems()
    out = validate(spec, yamlio.loads("items: [{a: x}, null, {a: 2}]\nb: 4\nsecret: s\n", "f"), "f", p, path="top")
    assert p.messages() == ["top: never a secret here", "top.items[0].a must be a whole number, not str 'x'",
                            "top.items[1] must be a mapping"]
    assert out == {"items": [None, None, {"a": 2}], "b": 4}  # partial: the keys that held
    closed = Record({"hooks": Field(Scalar("int"), 0)}, not_mapping="{path} has one key, hooks", closed=True)
    p = Problems()
    validate(closed, yamlio.loads("s:\n  hooks: 1\n  other: 2\n", "f")["s"], "f", p, path="s")
    assert p.messages() == ["s has one key, hooks"]


def test_the_sections_declare_exactly_the_keys_the_reference_lists() -> None:
    assert tuple(record_of(settings.Hook).fields) == settings.HOOK_KEYS
    assert tuple(record_of(settings.NotifyConfig).fields) == settings.NOTIFY_KEYS
    assert tuple(record_of(settings.JudgeConfig).fields) == settings.JUDGE_KEYS
    assert tuple(task.BLOCK_SPEC.fields) == task.CLASSIFICATION_KEYS
    assert tuple(schema.DATASET_SPEC.fields) == schema.DATASET_KEYS
    assert tuple(schema.MODEL_SPEC.fields) == schema.MODEL_KEYS
    assert tuple(promptspec._prompt_spec(False).fields) == promptspec.PROMPT_KEYS
    assert tuple(promptspec._prompt_spec(True).fields) == promptspec.PROMPT_KEYS + promptspec.PINNED_KEYS
    assert tuple(promptspec._retrieval_spec(False).fields) == promptspec.RETRIEVAL_KEYS
    assert tuple(promptspec.GENERATION_SPEC.fields) == promptspec.GENERATION_KEYS


def test_settings_built_in_code_are_held_to_the_files_rules() -> None:
    assert settings.JudgeConfig(endpoint="http://judge:8000", model="judge").samples is None
    with pytest.raises(ConfigError, match=r"^JudgeConfig.endpoint 'ftp://h/...' must be an http"):
        settings.JudgeConfig(endpoint="ftp://h/x", model="judge")
    with pytest.raises(ConfigError, match=r"retries must be a whole number from 0 to 20"):
        settings.Hook(name="a", url="https://h", retries=21)
    one = settings.Hook(name="a", url="https://h", models="m")  # type: ignore[arg-type]
    assert one.models == ["m"]  # one name reads as a list of one
