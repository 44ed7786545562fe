"""Docs are tested: every command and option has help text, every command an example."""

from __future__ import annotations

import click

from gitops.cli import main


def walk(group: click.Group, prefix: str = "gitops"):
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from walk(command, path)


def test_every_command_and_option_has_help() -> None:
    missing = []
    for path, command in walk(main):
        if not (command.help or "").strip():
            missing.append(f"{path}: no help text")
        if not isinstance(command, click.Group) and "example" not in (command.help or "").lower():
            missing.append(f"{path}: no example in its help")
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[0]}: no help text")
    assert not missing, "\n".join(missing)


def test_the_tree_is_not_empty() -> None:
    names = {path for path, _ in walk(main)}
    for expected in ("gitops init", "gitops show", "gitops register", "gitops alias set", "gitops check",
                     "gitops diff", "gitops history", "gitops codeowners", "gitops model create"):
        assert expected in names
