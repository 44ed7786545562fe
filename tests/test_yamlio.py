"""The one YAML loader: the values yaml.safe_load gives, lines for every key, and none of YAML's
dangerous corners (anchors and aliases, tags, merge keys, unbounded nesting or size)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops import yamlio
from gitops.yamlio import LineMap, YamlError
from tests.conftest import run_gitops

BILLION_LAUGHS = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                           + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]"
                              for i in range(8)]) + "\n"

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10),
                    st.sampled_from(["yes", "off", "~", "0x1f", "1_000", "1e-4", "2024-01-01", "12:30", ".inf"]))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(documents, st.booleans())
def test_values_are_what_safe_load_gives(doc, flow: bool) -> None:
    text = yaml.safe_dump(doc, default_flow_style=flow)
    assert yamlio.plain(yamlio.loads(text, "doc.yaml")) == yaml.safe_load(text)


def test_lines_of_mappings_and_keys() -> None:
    doc = yamlio.loads("name: m\nversions:\n  v1:\n    format: hf\n", "m.yaml")
    assert isinstance(doc, LineMap) and doc.key_lines == {"name": 1, "versions": 2}
    assert doc["versions"].key_lines == {"v1": 3} and doc["versions"]["v1"].line == 4


@pytest.mark.parametrize("text, reason", [
    (BILLION_LAUGHS, "anchors ('&a') are not allowed"),
    ("a: 1\nb: *a\n", "aliases ('*a') are not allowed"),
    ("a: !!python/object/apply:os.system [echo hi]\n", "the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    ("a: !!binary aGk=\n", "the tag 'tag:yaml.org,2002:binary' is not allowed"),
    ("a: !local x\n", "the tag '!local' is not allowed"),
    ("a: !!set {x, y}\n", "the tag 'tag:yaml.org,2002:set' is not allowed"),
    ("base: {x: 1}\nchild:\n  <<: {y: 2}\n", "merge keys ('<<') are not allowed"),
    ("a: 1\nb: 2\na: 3\n", "key 'a' appears twice"),
])
def test_refused_constructs_name_the_line(text: str, reason: str) -> None:
    with pytest.raises(YamlError) as err:
        yamlio.loads(text, "registry/m/model.yaml")
    assert reason in str(err.value) and str(err.value).startswith("registry/m/model.yaml:")
    assert err.value.problem.line is not None


def test_plain_scalar_tags_are_fine() -> None:
    assert yamlio.loads("a: !!str 007\nb: !!int '3'\n", "x") == {"a": "007", "b": 3}


def test_nesting_and_size_are_bounded(tmp_path: Path) -> None:
    deep = "[" * (yamlio.MAX_DEPTH + 1) + "]" * (yamlio.MAX_DEPTH + 1)
    with pytest.raises(YamlError, match=f"nested deeper than {yamlio.MAX_DEPTH} levels"):
        yamlio.loads(deep, "deep.yaml")
    ok = "[" * yamlio.MAX_DEPTH + "]" * yamlio.MAX_DEPTH
    assert yamlio.loads(ok, "ok.yaml") is not None
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:
        fh.truncate(yamlio.MAX_BYTES + 1)
    with pytest.raises(YamlError, match="larger than 16 MiB"):
        yamlio.load_file(big)
    with pytest.raises(YamlError, match="larger than 16 MiB"):
        yamlio.loads("#" * (yamlio.MAX_BYTES + 1), "big.yaml")


def test_messages_are_bounded() -> None:
    key = "k" * 10_000
    with pytest.raises(YamlError) as err:
        yamlio.loads(f"{key}: 1\n{key}: 2\n", "x.yaml")
    assert len(str(err.value)) < 300
    with pytest.raises(YamlError) as err:
        yamlio.loads("a: !" + "t" * 10_000 + " x\n", "x.yaml")
    assert len(str(err.value)) < 300


def test_an_anchor_in_a_registry_file_is_one_sentence(gitops_repo: Path) -> None:
    assert run_gitops("model", "create", "m", cwd=gitops_repo).exit_code == 0
    path = gitops_repo / "registry/m/model.yaml"
    path.write_text(path.read_text().replace("owners: []", "owners: &team ['@acme/ml']\ntask_owners: *team"))
    result = run_gitops("check", cwd=gitops_repo)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "registry/m/model.yaml:4: anchors ('&team') are not allowed" in result.stderr
