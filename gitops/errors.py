"""The one error tree. Each error carries the sentence a user reads; the CLI maps it to an exit code.

An error about a document may carry its :class:`Problem` list (file, line, key, message), so a
caller that wants the parts reads them instead of splitting strings apart.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

QUOTE_LIMIT = 80  # characters of a user's value quoted in a message (a 100 KB name is never echoed whole)


def shown(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``value`` as a message may quote it: control characters escaped (a name ending in a newline
    reads ``production\\n``), at most ``limit`` characters (longer ends in ``...``)."""
    if isinstance(value, int) and value.bit_length() > 256:  # str() of a 5,000-digit int raises
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = str(value)[: limit + 1]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Problem(str):
    """One thing wrong with a document: where (``source``, ``line``, ``key``) and what (``message``).

    It *is* its sentence, ``source:line: message`` (``source: message`` without a line), so it
    prints, compares and joins like one; the parts stay available as attributes."""

    source: str
    line: int | None
    key: str | None
    message: str

    def __new__(cls, source: str, line: int | None, key: str | None, message: str) -> Problem:
        where = shown(source, 200) if source else ""
        where = f"{where}:{line}" if line else where
        self = super().__new__(cls, f"{where}: {message}" if where else message)
        self.source, self.line, self.key, self.message = source, line, key, message
        return self

    def __repr__(self) -> str:
        return f"Problem({str.__repr__(self)})"

    def __reduce__(self) -> tuple:
        return (Problem, (self.source, self.line, self.key, self.message))


class GitopsError(Exception):
    """Base of every error a user may see. ``str(err)`` is the message; ``exit_code`` the status."""

    exit_code = 1

    def __init__(self, message: str, *, problems: Sequence[Problem | str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[Problem | str] = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class RegistryError(GitopsError):
    """A registry file is malformed or inconsistent."""


class ConfigError(GitopsError):
    """A user-written config (train config, gitops.yaml, a --set override) is wrong."""


class NotFoundError(GitopsError):
    """A model, version, alias, data set or file does not exist."""


class RepoStateError(GitopsError):
    """The repository is not in a state where the command can run (not a repo, dirty tree, ...)."""


class DiskFull(RepoStateError):
    """A write failed for want of space (ENOSPC, EDQUOT, EFBIG); what was changed is said."""

    def __init__(self, what: str, exc: OSError, undone: bool = True) -> None:
        where = f" ({shown(exc.filename, 200)})" if exc.filename else ""
        after = ("nothing was changed; free some space and run it again" if undone else
                 "the next gitops command rolls back what was written")
        why = (exc.strerror or "no space left on the device").lower()
        super().__init__(f"{what}: {why}{where}: {after}")


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for want of space (sqlite says "database or disk is full")."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    return type(exc).__module__ == "sqlite3" and "disk is full" in str(exc)


class GitError(GitopsError):
    """A git command failed; the message carries git's stderr."""


class DvcError(GitopsError):
    """A DVC operation failed; the message carries DVC's reason."""


class DataError(GitopsError):
    """A data batch or data set is invalid."""


class TrainError(GitopsError):
    """Training could not run or finish."""


class ConvertError(GitopsError):
    """Conversion to another format failed."""


class EvalError(GitopsError):
    """Evaluation could not run (missing files, md5 mismatch, ...)."""


class IntegrityError(EvalError):
    """Files on disk do not match the md5 the registry records."""


class GithubError(GitopsError):
    """A GitHub API call failed or returned something unexpected."""


class DeployError(GitopsError):
    """A deploy webhook could not be delivered."""


class GateFailed(GitopsError):
    """An evaluation gate failed: the report is still written, the exit code is 3."""

    exit_code = 3


class ApprovalMissing(GitopsError):
    """A protected alias change lacks a code owner's approval."""
