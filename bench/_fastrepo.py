"""Build large benchmark repositories quickly with ``git fast-import`` (one commit per operation)."""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENT = "Bench Bot <bench@example.com>"


class FastImport:
    """Streams commits to ``git fast-import``; each commit rewrites the given files."""

    def __init__(self, root: Path, branch: str = "main", parent: str | None = None) -> None:
        self.proc = subprocess.Popen(["git", "fast-import", "--quiet", "--force"], cwd=root,
                                     stdin=subprocess.PIPE)
        self.branch = branch
        self.mark = 0
        self.parent = parent
        self.time = 1_700_000_000

    def _w(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    def commit(self, message: str, files: dict[str, str]) -> int:
        self.mark += 1
        self.time += 60
        msg = message.encode()
        self._w(f"commit refs/heads/{self.branch}\nmark :{self.mark}\n"
                f"committer {IDENT} {self.time} +0000\ndata {len(msg)}\n".encode() + msg + b"\n")
        if self.mark == 1 and self.parent:
            self._w(f"from {self.parent}\n".encode())
        for path, text in files.items():
            data = text.encode()
            self._w(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        return self.mark

    def tag(self, name: str, mark: int, message: str) -> None:
        msg = message.encode()
        self._w(f"tag {name}\nfrom :{mark}\ntagger {IDENT} {self.time} +0000\ndata {len(msg)}\n".encode()
                + msg + b"\n")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise RuntimeError("git fast-import failed")
