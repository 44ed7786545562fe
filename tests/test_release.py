"""The toolkit's own release: ``python -m build`` makes the sdist and the wheel, and the wheel,
installed in a fresh virtual environment, runs the registry loop and scaffolds what CI installs.

Offline as every test: ``--no-isolation`` builds with the setuptools installed here (a normal
release lets build fetch it), and the venv sees this environment's packages
(``--system-site-packages``) so the dependencies are not downloaded; gitops itself comes from the
wheel (checked: it is imported from the venv, not from this checkout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from tests.test_readme import walkthrough

SOURCE = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_the_built_wheel_installs_in_a_fresh_venv_and_runs_the_registry_loop(tmp_path: Path) -> None:
    # this checkout as git would ship it (tracked and new files, nothing ignored), built outside it
    src = tmp_path / "src"
    for rel in run("git", "ls-files", "-co", "--exclude-standard", "-z", cwd=SOURCE).split("\0"):
        if rel and (SOURCE / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(SOURCE / rel, src / rel)
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(src), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("gitops_registry-*-py3-none-any.whl")
    (sdist,) = (tmp_path / "dist").glob("gitops_registry-*.tar.gz")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    for packaged in ("gitops/scaffold/workflows/train.yml", "gitops/ml/data/reviews.csv",
                     "gitops/report/templates/report.md.j2"):
        assert packaged in names, packaged
    assert not any(n.startswith("tests/") for n in names)
    with tarfile.open(sdist) as tf:
        top = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in tf.getnames() if len(Path(n).parts) > 1}
    assert {"pyproject.toml", "README.md", "gitops/cli/__init__.py"} <= top

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv), cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-deps",
        "--ignore-installed", "--no-warn-conflicts", str(wheel), cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    where = run(str(python), "-c", "import gitops; print(gitops.__file__)", cwd=tmp_path, env=env)
    assert where.startswith(str(venv)), where  # the wheel's gitops, not this checkout's
    assert run(str(venv / "bin" / "gitops"), "--version", cwd=tmp_path, env=env).startswith("gitops, version ")

    work = tmp_path / "work"
    work.mkdir()
    out = run("bash", "-c", "set -euo pipefail\n" + walkthrough(), cwd=work, env=env)
    assert "The registry is valid." in out
    pinned = (work / "my-models" / ".github" / "gitops-requirements.txt").read_text().splitlines()[-1]
    version = run(str(python), "-c", "import gitops; print(gitops.__version__)", cwd=tmp_path, env=env).strip()
    assert pinned == f"gitops-registry=={version}"  # what CI installs: the release that made the repository
    assert (work / "my-models" / ".github" / "workflows" / "train.yml").is_file()
