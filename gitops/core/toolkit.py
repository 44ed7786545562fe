"""``.github/gitops-requirements.txt``: the one line that says which gitops every workflow installs.

Every scaffolded workflow runs ``pip install -r .github/gitops-requirements.txt`` (the jobs that
train, convert and evaluate add the ``[ml]`` extra on the same command line), so the toolkit a team
runs in CI is pinned in the repository, reviewed like code (``.github/`` belongs to the admins in
CODEOWNERS) and changed by a pull request. ``gitops init`` writes the version installed where it
runs; the line can point anywhere pip installs from:

- ``gitops-registry==0.3.1``: a release on the package index (``--index-url URL`` lines before it
  name a private one);
- ``gitops-registry @ git+https://github.com/acme/gitops@<40-hex commit>``: a commit of a git repository;
- ``gitops-registry @ https://files.acme.dev/gitops_registry-0.3.1-py3-none-any.whl``: a wheel at a URL;
- ``./wheels/gitops_registry-0.3.1-py3-none-any.whl``: a wheel committed in this repository;
- ``.``: this repository is the toolkit itself (gitops' own repository).

Workflows that judge a pull request install the file as the pull request's *base* commit has it,
never the pull request's own. :func:`problems` is what ``gitops check`` reports: one requirement,
exactly pinned (``==``, a commit, a wheel file), no extras (the jobs add ``[ml]``), nothing else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from gitops.errors import Problem, shown

REQUIREMENTS_FILE = ".github/gitops-requirements.txt"
DISTRIBUTION = "gitops-registry"
MAX_BYTES = 16 * 1024
MAX_LINES = 100
# pip options a requirements file may hold besides the requirement: where to find packages.
OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--trusted-host", "--no-index")
_NAME = re.compile(r"^gitops[-_.]registry$", re.I)
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<extras>\[[^\]]*\])?"
                  r"\s*==\s*(?P<version>[A-Za-z0-9.+!_-]+)$")
_URL = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<extras>\[[^\]]*\])?\s*@\s*(?P<url>\S+)$")
_GIT = re.compile(r"^git\+(https|ssh|file)://\S+@(?P<rev>[0-9a-f]{40})(#\S*)?$")
_WHEEL = re.compile(r"^gitops_registry-[A-Za-z0-9.+!_]+-[^/]*\.whl$")

HEADER = f"""\
# The gitops toolkit every workflow installs: pip install -r {REQUIREMENTS_FILE}
# (the jobs that train, convert and evaluate add the [ml] extra themselves). One requirement line,
# exactly pinned, and `gitops check` checks it. Point it where your team gets gitops from:
#   gitops-registry==0.3.1                                         a release on your package index
#       (an `--index-url https://pypi.acme.dev/simple` line above it names a private index)
#   gitops-registry @ git+https://github.com/acme/gitops@<commit>  a commit of a git repository
#   ./wheels/gitops_registry-0.3.1-py3-none-any.whl                a wheel committed in this repository
# Pull requests are judged with the toolkit this file names on their base branch, never their own.
"""


def render(requirement: str) -> str:
    """The file's text for ``requirement``."""
    return HEADER + requirement.strip() + "\n"


def installed_requirement() -> str:
    """The exact gitops installed here, as a line CI can install: ``gitops-registry==VERSION``, or
    the git URL at the commit it was installed from (``pip install git+https://...@commit``). A
    local checkout or wheel file cannot be reached from CI, so its version is pinned instead."""
    from importlib import metadata

    from gitops import __version__

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return f"{DISTRIBUTION}=={__version__}"
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        direct = None
    if isinstance(direct, dict):
        vcs, url = direct.get("vcs_info") or {}, str(direct.get("url") or "")
        commit = str(vcs.get("commit_id") or "")
        if vcs.get("vcs") == "git" and re.fullmatch(r"[0-9a-f]{40}", commit) and url.startswith(("https://", "ssh://")):
            return f"{DISTRIBUTION} @ git+{url}@{commit}"
    return f"{DISTRIBUTION}=={dist.version or __version__}"


def requirement_problem(line: str, root: Path | None = None) -> str | None:
    """Why ``line`` is not a pinned gitops requirement a workflow can install, or None.
    ``root``: the repository, where a wheel path or ``.`` must lead."""
    line = line.strip()
    if line == ".":
        return None if root is None or _is_toolkit(root) else \
            "'.' installs this repository, which is not the gitops toolkit (no pyproject.toml naming gitops-registry)"
    if line.startswith(("./", "wheels/")) or (line.endswith(".whl") and "://" not in line and "@" not in line):
        return _wheel_problem(line, root)
    for pattern in (_PIN, _URL):
        match = pattern.match(line)
        if match:
            break
    else:
        return (f"'{shown(line)}' is not a pinned requirement: write {DISTRIBUTION}==VERSION, "
                f"{DISTRIBUTION} @ git+URL@COMMIT, or the path of a wheel in the repository")
    if not _NAME.match(match["name"]):
        return f"the requirement names '{shown(match['name'])}', not {DISTRIBUTION}"
    if match["extras"]:
        return (f"the requirement asks for extras {shown(match['extras'])}: write it without them (the jobs "
                "that need [ml] add it themselves; the others must not install torch)")
    if pattern is _URL:
        url = match["url"]
        if url.startswith("git+"):
            if not _GIT.match(url):
                return f"the git URL '{shown(url)}' must end in @ and a full 40-character commit id (a branch moves)"
        elif not (url.startswith(("https://", "http://")) and url.split("#", 1)[0].endswith(".whl")):
            return f"'{shown(url)}' is neither git+URL@COMMIT nor the https URL of a wheel"
    return None


def _wheel_problem(path: str, root: Path | None) -> str | None:
    rel = path[2:] if path.startswith("./") else path
    if ".." in Path(rel).parts or rel.startswith("/"):
        return f"the wheel path '{shown(path)}' must stay inside the repository"
    if not _WHEEL.match(Path(rel).name):
        return f"'{shown(Path(rel).name)}' is not a wheel of {DISTRIBUTION} (gitops_registry-VERSION-...whl)"
    if root is not None and not (root / rel).is_file():
        return f"the wheel {shown(rel)} is not in the repository"
    return None


def _is_toolkit(root: Path) -> bool:
    """Whether ``root`` holds the toolkit's own ``pyproject.toml`` (a ``name = "gitops-registry"``)."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return False
    text = pyproject.read_bytes()[: 1 << 20].decode("utf-8", "replace")
    return re.search(r'^name\s*=\s*["\']gitops[-_.]registry["\']\s*$', text, re.M | re.I) is not None


def parse(text: str, source: str = REQUIREMENTS_FILE, root: Path | None = None) -> tuple[str | None, list[Problem]]:
    """The requirement line of the file's ``text`` and the problems found (each naming its line)."""
    problems: list[Problem] = []
    requirement: str | None = None
    lines = text.splitlines()
    if len(text.encode("utf-8", "replace")) > MAX_BYTES or len(lines) > MAX_LINES:
        return None, [Problem(source, None, None, f"is larger than {MAX_BYTES // 1024} KiB or {MAX_LINES} lines; "
                                                  "it holds one requirement line")]
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-"):
            option = re.split(r"[\s=]", line, maxsplit=1)[0]
            if option not in OPTIONS:
                problems.append(Problem(source, number, None, f"pip option '{shown(option)}' is not allowed here "
                                        f"(allowed: {', '.join(OPTIONS)})"))
            continue
        if requirement is not None:
            problems.append(Problem(source, number, None, "a second requirement: the file names gitops once"))
            continue
        requirement = line
        if problem := requirement_problem(line, root):
            problems.append(Problem(source, number, None, problem))
    if requirement is None and not problems:
        problems.append(Problem(source, None, None, f"names no requirement (e.g. {installed_requirement()})"))
    return requirement, problems


def problems(root: Path) -> list[Problem]:
    """What ``gitops check`` says about the file: missing while a workflow installs from it, or wrong."""
    path = root / REQUIREMENTS_FILE
    if not path.is_file() or path.is_symlink():
        workflows = sorted((root / ".github" / "workflows").glob("*.yml"))
        users = [w.name for w in workflows if REQUIREMENTS_FILE in _head(w)]
        if not users:
            return []
        return [Problem(REQUIREMENTS_FILE, None, None, f"is missing (or not a regular file), and {', '.join(users)} "
                        f"install gitops from it; write it with one line, e.g. {installed_requirement()}")]
    try:
        text = path.read_bytes()[: MAX_BYTES + 1].decode("utf-8")
    except UnicodeDecodeError:
        return [Problem(REQUIREMENTS_FILE, None, None, "is not UTF-8 text")]
    return parse(text, REQUIREMENTS_FILE, root)[1]


def _head(path: Path) -> str:
    try:
        return path.read_bytes()[:1 << 20].decode("utf-8", "replace")
    except OSError:
        return ""
