"""``gitops reference``: write or check docs/reference.md (a hidden development command)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("reference", hidden=True)
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 when the file differs from what the specs give, e.g. in CI: --check.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The file to write or check (default: docs/reference.md of this source tree), e.g. --out ref.md.")
def reference_cmd(check: bool, out: Path | None) -> None:
    """Write docs/reference.md from the validation specs: every key of every file gitops reads
    (type, default, example, meaning), every environment variable, shell completion.

    \b
    Examples:
      gitops reference            # after changing a spec or a key table
      gitops reference --check    # what tests/test_reference.py checks
    """
    from gitops import reference
    from gitops.errors import ConfigError

    path = out or reference.DOC
    if check:
        if reference.differs(path):
            raise ConfigError(f"{path} differs from the validation specs; run: gitops reference")
        click.echo(f"{path} matches the specs")
        return
    path.write_text(reference.render(), encoding="utf-8")
    click.echo(f"Wrote {path}")


def register(group: click.Group) -> None:
    group.add_command(reference_cmd)
