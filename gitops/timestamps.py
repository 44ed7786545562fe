"""One way to write "now": UTC, whole seconds, ISO 8601 with a ``Z`` (``2026-01-31T09:15:00Z``).

Every record gitops writes (a version's ``created_at``, a data set version, a results document)
uses :func:`utc_now`, so the registry never mixes ``Z`` and ``+00:00``. Files written before this
rule (``+00:00``) stay valid: readers treat the field as text.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
