"""Registry commands start fast: they never import the heavy ML or DVC libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_gitops

HEAVY = ("torch", "transformers", "peft", "accelerate", "ctranslate2", "dvc", "github", "pyarrow")

PROBE = """
import sys, json
from gitops.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)), file=sys.stderr)
"""


def loaded_heavy(cwd: Path, *args: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_registry_commands_do_not_import_heavy_libraries(gitops_repo: Path, weights) -> None:
    run_gitops("model", "create", "m", "--protect", "production=@acme/ops", cwd=gitops_repo)
    run_gitops("register", "m", str(weights()), cwd=gitops_repo)
    run_gitops("alias", "set", "m", "production", "v1", cwd=gitops_repo)
    for args in (["show"], ["show", "m"], ["show", "m@production", "--json"], ["check"],
                 ["history", "m"], ["diff", "HEAD~1", "HEAD"], ["codeowners", "--check"], ["--help"],
                 ["site", "--out", str(gitops_repo.parent / "site")]):
        assert loaded_heavy(gitops_repo, *args) == [], args


def test_every_api_verb_resolves_to_its_area_function() -> None:
    """`gitops.api` is the one facade: each lazily re-exported verb is the area's own function."""
    import gitops.api as api

    for name in api.__all__:
        assert callable(getattr(api, name)), name
    from gitops.data.ingest import ingest
    from gitops.train.train import train

    assert api.ingest is ingest and api.train is train
