"""An offline GitHub REST emulator validated against GitHub's OpenAPI description (see README.md)."""

from tests.emulator.server import Emulator

__all__ = ["Emulator"]
