"""Exceptions raised by ferkit.

All derive from :class:`FerkitError`, itself a :class:`ValueError`, so callers can catch
either the specific case or everything ferkit raises about bad input.
"""

from __future__ import annotations


class FerkitError(ValueError):
    """Base class of ferkit's input errors."""


class ImageReadError(FerkitError):
    """An image file is missing, unreadable, corrupt or not an image."""


class VideoReadError(FerkitError):
    """A video file is missing, or OpenCV cannot open it or decode a single frame of it."""


class DataError(FerkitError):
    """A dataset has malformed rows or files.

    Attributes:
        problems: one human-readable line per bad row or file, naming it.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        shown = self.problems[:10]
        more = len(self.problems) - len(shown)
        lines = [message, *("  " + p for p in shown)]
        if more > 0:
            lines.append(f"  ... and {more} more")
        super().__init__("\n".join(lines))


class ModelError(FerkitError):
    """A model file or its metadata is missing or inconsistent."""
