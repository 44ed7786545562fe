"""The one loader of outside JSON refuses what json.loads lets through or crashes on, naming the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops import jsonio
from gitops.jsonio import JsonError


@pytest.mark.parametrize("text, line, reason", [
    ('{\n  "loss": 1,\n  "loss": 2\n}', 3, "key 'loss' appears twice"),
    ('{"a": {"b": 1, "b": 1}}', 1, "key 'b' appears twice"),
    ('{"n": ' + "7" * 5000 + "}", None, "a number of 5,000 digits (at most 100)"),
    ('{"n": -' + "7" * 101 + "}", None, "a number of 101 digits"),
    ('{"n": 1e999}', None, "the number 1e999 is out of range"),
    ('{"n": NaN}', None, "NaN is not a JSON number"),
    ('{"t": "a \\ud800 b"}', None, "holds a lone surrogate"),
    ('{"\\udfff": 1}', None, "holds a lone surrogate"),
    ("[" * 100_000 + "]" * 100_000, None, "nested deeper than 64 levels"),
    ("[" * (jsonio.MAX_DEPTH + 1) + "]" * (jsonio.MAX_DEPTH + 1), None, "nested deeper than 64 levels"),
    ('{"a": 1,\n "b": }', 2, "not valid JSON (Expecting value, column 7)"),
])
def test_refused_with_source_line_and_reason(text: str, line: int | None, reason: str) -> None:
    with pytest.raises(JsonError) as err:
        jsonio.loads(text, "m.json")
    assert err.value.line == line and reason in err.value.reason, str(err.value)
    assert str(err.value).startswith(f"m.json:{line}: " if line else "m.json: ")
    assert len(str(err.value)) < 200


def test_a_row_of_a_json_lines_file_is_named_by_its_line() -> None:
    with pytest.raises(JsonError, match=r"^rows.jsonl:7: key 'id' appears twice$"):
        jsonio.loads('{"id": 1, "id": 2}', "rows.jsonl", 7)


def test_what_is_fine_stays_fine() -> None:
    doc = {"emoji": "😀 \ud83d\ude00", "deep": [[[[1]]]], "big": 2**200, "neg": -1.5e300, "ok": [None, True]}
    text = json.dumps(doc, ensure_ascii=True)
    assert jsonio.loads(text, "x.json") == json.loads(text)
    edge = "[" * jsonio.MAX_DEPTH + "]" * jsonio.MAX_DEPTH
    assert jsonio.loads(edge, "x.json") == json.loads(edge)
    assert jsonio.loads('{"n": ' + "9" * jsonio.MAX_DIGITS + "}", "x.json")["n"] == int("9" * jsonio.MAX_DIGITS)


def test_reads_are_bounded(tmp_path: Path) -> None:
    sparse = tmp_path / "huge.json"
    with sparse.open("wb") as fh:
        fh.truncate(10 * 1024**3)  # 10 GB that take no disk: refused by size, never read
    with pytest.raises(jsonio.TooLarge, match=r"huge.json: larger than 1 MiB"):
        jsonio.load_file(sparse, 1024 * 1024)
    with pytest.raises(jsonio.TooLarge):  # a device that never ends: the read stops past the limit
        jsonio.read_bounded(Path("/dev/zero"), 4096)
    small = tmp_path / "ok.json"
    small.write_text('{"a": 1}')
    assert jsonio.load_file(small, 1024) == {"a": 1}
    (tmp_path / "bad.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(JsonError, match="not UTF-8"):
        jsonio.load_file(tmp_path / "bad.json", 1024)
