"""Which files in an output folder a report owns: checked before any work is done, and again when it is written.

Only files an earlier report in the folder lists as its own are replaced or removed: a file of the
user's of the same name (a ground-truth ``mask.nii.gz`` beside the study) is refused, never
overwritten. No PyTorch here: ``ich predict`` checks its output place before the networks load.
"""

from __future__ import annotations

import json
from pathlib import Path

OUTPUT_FILES = ("report.json", "report.html", "seg.dcm", "mask.nii.gz")
"""Every file a study's report may consist of: one left in ``out_dir`` by an earlier study and not
written now is removed, so no file in the folder belongs to another study."""


class OutputRefusedError(ValueError):
    """The output folder cannot take this report; the message names the folder and the problem."""


def _own_outputs(out_dir: Path) -> set[str]:
    """The files the report already in ``out_dir`` lists as its own (none without one)."""
    try:
        outputs = json.loads((out_dir / "report.json").read_text())["outputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {"report.json"} | {name for name in outputs.values() if name in OUTPUT_FILES}


def refuse_foreign_outputs(out_dir: str | Path) -> set[str]:
    """The files an earlier report in ``out_dir`` lists as its own; raise :class:`OutputRefusedError` when
    the folder holds files a report would write but no earlier report there wrote: the user's own (a
    ground-truth ``mask.nii.gz``, a ``seg.dcm`` of another tool), never to be touched."""
    out_dir = Path(out_dir)
    own = _own_outputs(out_dir)
    foreign = [name for name in OUTPUT_FILES if (out_dir / name).exists() and name not in own]
    if foreign:
        raise OutputRefusedError(
            f"{out_dir}: holds {', '.join(foreign)}, which no earlier report there lists as its own; ich predict "
            "would overwrite it. Write the report into another folder (--out)"
        )
    return own


__all__ = ["OUTPUT_FILES", "OutputRefusedError", "refuse_foreign_outputs"]
