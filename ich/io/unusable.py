"""The one error every reader raises for a file that cannot become a slice."""

from __future__ import annotations

from pathlib import Path


class UnusableSliceError(Exception):
    """A source file that cannot become a slice; ``reason`` goes to the quarantine table.

    Raised by the DICOM, NIfTI and image readers alike, so the converter quarantines a bad file
    whatever its format, with the file and the reason, instead of dropping it.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
