"""Where the repository lies, for tests that run its commands or read its files."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
