"""Progress bars on stderr for long work (tqdm, imported late): one bar per stage, started afresh
when the stage changes or its count goes back (``compare`` predicts once per variant).

A bar starts at the first count it is given: rows a killed run already predicted (a resumed
``predict``) are shown as done but not counted in the rate, which covers only this run's work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STAGE_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]"


class StageBar:
    """``bar(stage, done, total)`` draws ``done`` of ``total`` for ``stage``; ``bar.of(stage)`` is
    the ``(done, total)`` callback of one stage. A context manager that closes the bar."""

    def __init__(self, unit: str = "it", bar_format: str | None = None) -> None:
        self.unit, self.bar_format = unit, bar_format
        self.bar: Any = None
        self.stage: str | None = None
        self.total: int | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None or stage != self.stage or total != self.total or done < self.bar.n:
            self.close()
            self.stage, self.total = stage, total
            self.bar = tqdm(total=total, initial=done, desc=stage, leave=False, dynamic_ncols=True,
                            unit=self.unit, bar_format=self.bar_format)
        self.bar.n = done
        self.bar.refresh()

    def of(self, stage: str) -> Callable[[int, int], None]:
        return lambda done, total: self(stage, done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> StageBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
