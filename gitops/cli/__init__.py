"""The ``gitops`` command line: thin commands over :mod:`gitops.api`.

Each ``gitops/cli/<area>.py`` module defines ``register(group)``, which adds its commands. Modules
import only click and light helpers at top level: heavy libraries load inside the api functions.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from gitops import __version__
from gitops.errors import GitopsError

# Every error a user reads is bounded, whatever the library put in it: a 100 KB value must never be
# echoed whole, nor ten thousand problems listed (the library clips what it quotes; this is the net).
MAX_ERROR_LINE = 500
MAX_ERROR_LINES = 60

# Command modules, in the order their commands appear in `gitops --help`.
COMMAND_MODULES = ("registry", "prompt", "data", "train", "convert", "evaluate", "report", "site", "github", "deploy",
                   "serve", "demo", "reference")


class GitopsGroup(click.Group):
    """Runs a command and turns any :class:`GitopsError` into one sentence and its exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except GitopsError as exc:
            if ctx.meta.get("gitops.debug"):
                traceback.print_exc()
            click.secho(f"Error: {bounded(str(exc))}", err=True, fg="red")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:  # usage errors quote the user's values too
            exc.message = bounded(exc.message)  # type: ignore[misc]  # click marks it Final; bounded in place
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except OSError as exc:  # the system refused a read or a write the library did not foresee
            if ctx.meta.get("gitops.debug"):
                traceback.print_exc()
            where = f": {exc.filename}" if exc.filename else ""
            click.secho(f"Error: {bounded(exc.strerror or str(exc))}{bounded(where)}", err=True, fg="red")
            sys.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # keep the registration order: it follows the workflow


def bounded(message: str) -> str:
    """``message`` with each line at most :data:`MAX_ERROR_LINE` characters and at most
    :data:`MAX_ERROR_LINES` lines (the rest counted, not printed)."""
    lines = message.split("\n", MAX_ERROR_LINES)
    more = message.count("\n") + 1 - MAX_ERROR_LINES if len(lines) > MAX_ERROR_LINES else 0
    out = [line if len(line) <= MAX_ERROR_LINE else line[: MAX_ERROR_LINE - 3] + "..."
           for line in lines[:MAX_ERROR_LINES]]
    return "\n".join(out + ([f"  ... and {more} more lines"] if more else []))


@click.group(cls=GitopsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="gitops")
@click.option("--debug", is_flag=True, help="Show the full traceback when a command fails.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Model CI/CD as pull requests: a git + DVC model registry.

    \b
    Examples:
      gitops init my-models          # a new GitOps repository
      gitops show                    # models and their aliases
      gitops show review-autocomplete@production
      gitops demo                    # the whole loop, offline, on a tiny model
    """
    ctx.meta["gitops.debug"] = debug


def _load_command_modules() -> None:
    for name in COMMAND_MODULES:
        module_name = f"gitops.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # that area is not part of this build
            raise
        module.register(main)


_load_command_modules()
