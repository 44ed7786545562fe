"""Run the emulator standalone (for ``act`` runs): prints its base URL on the first line of stdout.

    python -m tests.emulator --port 8765 --repo-dir /path/to/origin.git --repo acme/models --state state.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.emulator.server import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.emulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port (0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--repo-dir", type=Path, required=True, help="git repository GitHub's data comes from")
    parser.add_argument("--repo", default="acme/models", help="owner/name served")
    parser.add_argument("--default-branch", default="main")
    parser.add_argument("--state", type=Path, help="JSON seed: users, teams, pulls, reviews, comments")
    args = parser.parse_args(argv)
    em = Emulator(args.repo_dir, args.repo, args.default_branch)
    if args.state:
        em.seed(json.loads(args.state.read_text(encoding="utf-8")))
    url = em.start(args.port, args.host, quiet=False)
    print(url, flush=True)
    try:
        em.wait()
    except KeyboardInterrupt:
        em.stop()
    if em.violations:
        print("\n".join(em.violations), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
