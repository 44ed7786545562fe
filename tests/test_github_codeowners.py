"""CODEOWNERS matching with GitHub's semantics (its documented example file, and more)."""

from __future__ import annotations

import pytest

from gitops.registry.codeowners_rules import compile_pattern, parse

GITHUB_EXAMPLE = """\
# Each line is a file pattern followed by one or more owners.
*       @global-owner1 @global-owner2
*.js    @js-owner #This is an inline comment.
*.go docs@example.com
*.txt @octo-org/octocats
/build/logs/ @doctocat
docs/*  docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
/src/ @octocat
/src/test/ @octocat-test
"""


@pytest.mark.parametrize("path, owners", [
    ("README.md", ["@global-owner1", "@global-owner2"]),
    ("src/deep/app.js", ["@octocat"]),            # /src/ comes later than *.js: the last match wins
    ("lib/app.js", ["@js-owner"]),
    ("main.go", ["docs@example.com"]),
    ("notes/a.txt", ["@octo-org/octocats"]),
    ("build/logs/today.log", ["@octocat"]),        # **/logs is later than /build/logs/
    ("docs/getting-started.md", ["@doctocat"]),    # /docs/ is later than docs/*
    ("x/apps/y.py", ["@octocat"]),
    ("apps/github/owned-by-nobody.py", []),       # a pattern without owners unowns
    ("apps/other/file", ["@octocat"]),
    ("scripts/run.sh", ["@doctocat", "@octocat"]),
    ("deep/a/logs/x", ["@octocat"]),
    ("src/test/t.py", ["@octocat-test"]),
])
def test_github_documented_example(path: str, owners: list[str]) -> None:
    assert parse(GITHUB_EXAMPLE).owners_of(path) == owners


@pytest.mark.parametrize("pattern, matches, misses", [
    ("*", ["a", "a/b/c.txt"], []),
    ("*.yaml", ["a.yaml", "registry/m/aliases/p.yaml"], ["a.yml", "a.yaml/x" + "x"]),
    ("docs/*", ["docs/a.md"], ["docs/build/a.md", "x/docs/a.md"]),
    ("docs/**", ["docs/a.md", "docs/b/c.md"], ["docs"]),
    ("/build/logs/", ["build/logs/a", "build/logs/a/b"], ["x/build/logs/a", "build/logs"]),
    ("apps/", ["apps/a", "x/apps/a"], ["apps", "myapps/a"]),
    ("**/logs", ["logs/a", "a/b/logs/c", "logs"], ["logsx/a"]),
    ("/registry/*/aliases/production.yaml", ["registry/m/aliases/production.yaml"],
     ["registry/m/aliases/staging.yaml", "x/registry/m/aliases/production.yaml"]),
    ("registry/m", ["registry/m/model.yaml", "registry/m"], ["registry/mm/model.yaml"]),
    ("a?c.txt", ["abc.txt", "x/abc.txt"], ["ac.txt", "a/c.txt"]),
    ("README.md", ["README.md", "x/README.md"], ["readme.md"]),   # case-sensitive
    ("a/**/b", ["a/b", "a/x/b", "a/x/y/b/z"], ["b", "x/a/b"]),
])
def test_patterns(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = compile_pattern(pattern)
    assert [p for p in matches if not regex.match(p)] == []
    assert [p for p in misses if regex.match(p)] == []


def test_unsupported_syntax_is_skipped_and_reported() -> None:
    co = parse("* @a\n!secret.txt @b\n[ab].txt @c\n\\#x @d\n# just a comment\n\n", "CODEOWNERS")
    assert [r.pattern for r in co.rules] == ["*"]
    assert len(co.problems) == 3 and co.problems[0].startswith("CODEOWNERS:2:")
    assert co.owners_of("secret.txt") == ["@a"]
