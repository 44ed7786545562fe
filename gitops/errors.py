"""The one error tree. Each error carries the sentence a user reads; the CLI maps it to an exit code."""

from __future__ import annotations


class GitopsError(Exception):
    """Base of every error a user may see. ``str(err)`` is the message; ``exit_code`` the status."""

    exit_code = 1

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])

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
