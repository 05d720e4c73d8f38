"""The CT-ICH label table (``hemorrhage_diagnosis*.csv``), shared by both CT-ICH releases.

The PhysioNet NIfTI release (:mod:`ich.sources.ct_ich`) and the Kaggle JPG release
(:mod:`ich.sources.images`) label slices with the same columns: ``PatientNumber``,
``SliceNumber``, one 0/1 column per subtype and ``No_Hemorrhage``. ``any = 1 - No_Hemorrhage``;
a row where that disagrees with the subtype columns is kept and reported as an issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ich.io.raw_cohort import to_flag
from ich.sources.common import read_csv_table

CT_ICH_COLUMNS = {
    "intraventricular": "Intraventricular",
    "intraparenchymal": "Intraparenchymal",
    "subarachnoid": "Subarachnoid",
    "epidural": "Epidural",
    "subdural": "Subdural",
}
"""Our subtype name -> the release's column."""

CT_ICH_CITATION = (
    "Hssayeni MD, Croock MS, Salman AD, Al-khafaji HF, Yahya ZA, Ghoraani B. Intracranial "
    "hemorrhage segmentation using a deep convolutional model. Data 2020;5(1):14. "
    "Hssayeni M. Computed Tomography Images for Intracranial Hemorrhage Detection and "
    "Segmentation (version 1.3.1). PhysioNet 2020, doi:10.13026/4nae-zg36. Goldberger AL et al. "
    "PhysioBank, PhysioToolkit, and PhysioNet. Circulation 2000;101(23):e215-e220."
)


@dataclass(frozen=True)
class CtIchLabelRow:
    """One slice's labels: ``patient`` is the zero-padded number ("049"), ``slice_number`` as written."""

    patient: str
    slice_number: int
    labels: dict[str, int | None]  # "any" and the five subtypes


def read_ct_ich_labels(path: Path) -> tuple[list[CtIchLabelRow], list[dict]]:
    """The rows of a CT-ICH label CSV, and the issues found (``{"path", "reason"}`` each).

    Empty trailing lines are skipped; unparseable and duplicate rows are left out and reported.
    """
    table = read_csv_table(
        path, required=["PatientNumber", "SliceNumber", *CT_ICH_COLUMNS.values(), "No_Hemorrhage"], what="CT-ICH labels"
    )
    rows: list[CtIchLabelRow] = []
    issues: list[dict] = []
    seen: set[tuple[str, int]] = set()
    for row in table.to_dict("records"):
        if str(row["PatientNumber"]).strip() == "":
            continue
        try:
            patient = f"{int(float(row['PatientNumber'])):03d}"
            number = int(float(row["SliceNumber"]))
        except ValueError:
            issues.append({"path": str(path), "reason": f"unparseable row {row}"})
            continue
        if (patient, number) in seen:
            issues.append({"path": str(path), "reason": f"duplicate row for {patient}/{number}"})
            continue
        seen.add((patient, number))
        subtypes = {label: to_flag(row[column]) for label, column in CT_ICH_COLUMNS.items()}
        no_hemorrhage = to_flag(row["No_Hemorrhage"])
        any_value = None if no_hemorrhage is None else 1 - no_hemorrhage
        if any_value is not None and any_value != max(v or 0 for v in subtypes.values()):
            issues.append(
                {
                    "path": f"{path.name}:{patient}/{number}",
                    "reason": "No_Hemorrhage disagrees with the subtype columns; any = 1 - No_Hemorrhage",
                }
            )
        rows.append(CtIchLabelRow(patient, number, {"any": any_value, **subtypes}))
    return rows, issues
