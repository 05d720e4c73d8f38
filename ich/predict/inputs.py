"""Read one study for ``ich predict``: a DICOM folder or file, a NIfTI volume, or pre-windowed images.

Every slice goes through :func:`ich.data.cohort_conversion.render_slice`, the code of the ``convert``
stage, so the networks see exactly what they were trained on (windows, framing, size).

What is accepted and what is refused (:class:`StudyInputError`, naming the path and the problem):

- a **DICOM folder** (any depth, files with or without suffix; a folder with any DICOM file in it,
  whatever else it holds, such as PNG previews, which are listed as not read): headers are scanned and one
  axial CT series is chosen as the ``folder`` source does (:func:`ich.sources.dicomtree.select_series`);
  the other series are listed with the reason they were not used. Several studies in one folder
  are refused with their list; a folder without a CT image series is refused.
- a **single DICOM file**: a one-slice study.
- a **NIfTI volume** (``.nii``, ``.nii.gz``), in HU: one slice per axial plane.
- a **folder of pre-windowed images** (PNG, JPEG, TIFF, BMP) and no DICOM file: one study, slices in natural file
  name order (``2.jpg`` before ``10.jpg``), no HU and no spacing, so no volume in mL. Masks kept
  beside the slices (CT-ICH's ``<S>_HGE_Seg.jpg``, any ``*mask*`` file) and images too small to be
  a slice are skipped and listed.

A study in which no slice shows a head (all blank, all saturated: a wrong export) is refused: the
networks cannot assess it, and a negative verdict would read as a finding. So is one that is not a
head CT (:mod:`ich.data.head_ct`: too few slices with brain enclosed by skull and air around the
head): a photograph, a screenshot, an inverted display, a radiograph, another body part.

A study with Hounsfield units is windowed as the networks' training slices were (the
``convert`` windows, or a pre-windowed release's own: :func:`ich.predict.artefacts.study_conversion`).
Two slices at one position (a series copied twice) are refused.

A series with Hounsfield units thinner than the training slices (``slab_mm``, from the training
cohort) is reformatted into slabs of that thickness (mean HU over each slab, :mod:`ich.data.slabs`)
before windowing: :attr:`Study.slabs` are what the networks see, and each slab's findings map
back to its source slices, which stay the study's slices for the report, the SEG and the mask.

Files that cannot be used inside an otherwise good study (an unreadable header, a truncated
slice, a localizer, a ``README.txt`` beside the slices) are skipped and listed in
:attr:`Study.skipped` with the reason; a study left with no usable slice is refused.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ich.data.cohort_conversion import ConvertConfig, render_hu, render_slice, slice_gap_mm
from ich.data.framing import Frame
from ich.data.head_ct import head_evidence, not_a_head_ct
from ich.data.slabs import mean_slab, needs_slabs, slab_members
from ich.data.window_estimate import WindowEstimate, WindowEstimateError, estimate_window, harmonise
from ich.io.dicom import read_ct_slice, read_dicom_header
from ich.io.nifti import nifti_grid, nifti_slice_count, read_nifti_slice
from ich.io.unusable import UnusableSliceError
from ich.predict.familiarity import head_mask
from ich.sources.common import iter_files, natural_key
from ich.sources.dicomtree import scan_dicom_tree, select_series
from ich.sources.images import ct_ich_slice_images

MASK_NAME = "mask"
"""Image files whose name holds this (any case) are masks exported beside the slices, not slices."""
DUPLICATE_Z_MM = 0.01
"""Slices closer than this along z are one position twice."""
QFORM_TOLERANCE_MM = 0.1
"""A qform placing voxels further than this from the sform's places is a disagreement worth a note."""
GAP_FACTOR = 1.5
"""A step between slices wider than this many times the series' median step is a gap."""
MIN_IMAGE_SIDE = 64
"""Smallest image side (px) read as a slice: DICOM readers refuse matrices under 256, and an
icon or a thumbnail is no CT slice."""
VOXEL_SCALE_TOLERANCE = 1e-6
"""A NIfTI grid whose voxel volume agrees with pixel x slice spacing this closely needs no correction."""
MIN_HEAD_FRACTION = 0.01
MAX_HEAD_FRACTION = 0.98
"""A slice shows a head when its head (:func:`ich.predict.familiarity.head_mask`) covers
between these shares of its frame: a head framed tightly still leaves the corners dark."""
IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
"""Suffixes read as pre-windowed images."""


class StudyInputError(ValueError):
    """The input cannot be read as one study; the message names the path and the problem."""


@dataclass(frozen=True)
class InputSlice:
    """One usable slice: the converted image and where it came from."""

    image: np.ndarray  # RGB uint8 (size, size, 3), as ``convert`` writes it
    z: float  # mm along the slice normal (DICOM, NIfTI); the file's rank for images
    frame: Frame  # how the source was framed before the resize (to map masks back)
    source_shape: tuple[int, int]  # rows, columns of the source image
    source_path: str
    sop_uid: str  # DICOM SOPInstanceUID; "" for other inputs
    spacing_row_mm: float  # at the converted size; NaN when the input has no spacing
    spacing_col_mm: float
    channels: str  # which windows the image really has (see ``Study.channels``)


@dataclass(frozen=True)
class Slab:
    """Thin source slices averaged into one slice of the training thickness (:mod:`ich.data.slabs`)."""

    image: np.ndarray  # RGB uint8 (size, size, 3), rendered from the slab's mean HU
    members: tuple[int, ...]  # positions in ``Study.slices`` of its source slices
    z: float  # mean z of its slices (mm)


@dataclass
class Study:
    """The ordered slices of one study and everything the report says about its input.

    ``slabs`` is empty unless the series was thinner than the training slices; then the networks
    read the slabs, and ``reformat`` says what was done.
    """

    kind: str  # dicom | nifti | images
    path: str
    study_uid: str
    series_uid: str
    series_description: str
    slices: list[InputSlice]
    skipped: list[dict[str, str]] = field(default_factory=list)  # {path, reason}
    other_series: list[dict[str, str]] = field(default_factory=list)  # {path, reason}
    slabs: list[Slab] = field(default_factory=list)
    reformat: str = ""
    voxel_scale: float = 1.0  # true voxel volume / (pixel spacing x slice spacing): a NIfTI's sheared or oblique grid
    geometry_note: str = ""
    window_estimate: WindowEstimate | None = None  # the export window of grey images (harmonise_window)
    harmonisation: str = ""
    window_warnings: list[str] = field(default_factory=list)  # why grey images were scored as sent

    def note_geometry(self, note: str, *, first: bool = False) -> None:
        """Add ``note`` (if any) to :attr:`geometry_note`, after what it says (before, with ``first``)."""
        notes = [note, self.geometry_note] if first else [self.geometry_note, note]
        self.geometry_note = "; ".join(filter(None, notes))

    @property
    def network_images(self) -> list[np.ndarray]:
        """What the networks read: the slabs' images when reformatted, else the slices'."""
        return [s.image for s in self.slabs] if self.slabs else [s.image for s in self.slices]

    @property
    def slab_of_slice(self) -> np.ndarray:
        """For each slice, the position of its network image (its slab; itself when not reformatted)."""
        if not self.slabs:
            return np.arange(len(self.slices))
        of = np.empty(len(self.slices), dtype=int)
        for k, slab in enumerate(self.slabs):
            of[list(slab.members)] = k
        return of

    @property
    def has_hu(self) -> bool:
        return self.kind in ("dicom", "nifti")

    @property
    def slice_spacing_mm(self) -> float:
        """Distance between slices (median z step; the one slice's thickness is not known here)."""
        return slice_gap_mm(np.array([s.z for s in self.slices])) if self.has_hu else float("nan")

    @property
    def channels(self) -> list[str]:
        """The distinct channel contents of the slices, e.g. ``["HU windows [[0, 80], ...]"]``."""
        return sorted({s.channels for s in self.slices})


def _hu_channels(config: ConvertConfig) -> str:
    windows = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in config.windows)
    return f"HU windows {windows}"


IMAGE_CHANNELS = {
    "grey": "one grey window (R = G = B)",
    "rgb": "three channels as stored (RGB)",
    "brain+bone": "brain window (R, G) and bone window (B)",
}
"""What the report says for each value of the index's ``channels`` (:func:`ich.io.image_files.image_channels`)."""


def _render_all(
    rows: list[tuple[dict, int | None]], config: ConvertConfig, kind: str, raw_dir: str | Path = "."
) -> tuple[list[InputSlice], list[dict[str, str]]]:
    slices, skipped = [], []
    for row, sub_index in rows:
        record = render_slice(row, config, raw_dir=raw_dir, sub_index=sub_index, require_patient_id=False)
        if record["quarantine"]:
            skipped.append({"path": record["source_path"], "reason": record["reason"]})
            continue
        if kind == "images" and min(record["source_shape"]) < MIN_IMAGE_SIDE:
            size = "x".join(map(str, record["source_shape"]))
            reason = f"an image of {size} px: too small for a CT slice (at least {MIN_IMAGE_SIDE} a side)"
            skipped.append({"path": record["source_path"], "reason": reason})
            continue
        image = np.ascontiguousarray(record["image"][..., ::-1])
        slices.append(
            InputSlice(
                image=image,
                z=float(record["z"]),
                frame=record["frame"],
                source_shape=record["source_shape"],
                source_path=record["source_path"],
                sop_uid=record["key"] if kind == "dicom" else "",
                spacing_row_mm=float(record["spacing_row_mm"]),
                spacing_col_mm=float(record["spacing_col_mm"]),
                channels=_hu_channels(config) if record["has_hu"] else IMAGE_CHANNELS[record["channels"]],
            )
        )
    return slices, skipped


def _not_used(record: dict) -> str:
    """Why a readable DICOM image outside the CT image series is not read."""
    if record["modality"].upper() == "CT":
        return f"a CT localizer (scout; ImageType {record['image_type']}), not an axial slice"
    return f"not a CT image (Modality {record['modality'] or 'missing'})"


def _dicom_study(path: Path, files: list[Path], config: ConvertConfig) -> Study:
    records = scan_dicom_tree(files)
    skipped = [{"path": r["path"], "reason": r["error"]} for r in records.to_dict("records") if r["error"]]
    readable = records[records["error"] == ""]
    if readable.empty:
        reasons = "; ".join(f"{Path(s['path']).name}: {s['reason']}" for s in skipped[:5])
        raise StudyInputError(f"{path}: none of its {len(files)} files is a readable DICOM image ({reasons})")
    studies = sorted(set(readable["study_uid"]))
    if len(studies) > 1:
        listing = "\n".join(
            f"  {uid}: {int((readable['study_uid'] == uid).sum())} files, e.g. {readable[readable['study_uid'] == uid]['path'].iloc[0]}"
            for uid in studies
        )
        raise StudyInputError(
            f"{path} holds {len(studies)} studies; point ich predict at one study's folder:\n{listing}"
        )
    is_ct = (readable["modality"].str.upper() == "CT") & ~readable["image_type"].str.upper().str.contains("LOCALIZER")
    if not is_ct.any():
        found = sorted(set(readable["modality"]) - {""}) or ["no Modality"]
        raise StudyInputError(f"{path}: no CT image series (modalities found: {', '.join(found)}; CT localizers only?)")
    chosen, other_series = select_series(readable[is_ct])
    other_series += [{"path": r["path"], "reason": _not_used(r)} for r in readable[~is_ct].to_dict("records")]
    rows = [({"path": p, "format": "dicom"}, None) for p in chosen["path"]]
    slices, unusable = _render_all(rows, config, "dicom")
    first = chosen.iloc[0]
    return _finish(
        Study(
            kind="dicom",
            path=str(path),
            study_uid=first["study_uid"],
            series_uid=first["series_uid"],
            series_description=first["description"],
            slices=slices,
            skipped=skipped + unusable,
            other_series=other_series,
        )
    )


def _nifti_study(path: Path, config: ConvertConfig) -> Study:
    try:
        grid = nifti_grid(path)
    except UnusableSliceError as exc:
        raise StudyInputError(f"{path}: {exc.reason}") from exc
    row = {"path": str(path), "format": "nifti", "patient_id": "", "study_id": path.name, "series_id": path.name}
    slices, skipped = _render_all([({**row, "slice_key": path.name}, k) for k in range(grid.n_slices)], config, "nifti")
    study = _finish(Study("nifti", str(path), path.name, path.name, "NIfTI volume", slices, skipped))
    if len(study.slices) > 1:
        row_mm, col_mm, _ = grid.spacing
        scale = grid.voxel_mm3 / (row_mm * col_mm * study.slice_spacing_mm)
        study.voxel_scale = scale if abs(scale - 1) > VOXEL_SCALE_TOLERANCE else 1.0
    if grid.sheared:
        sheared = (
            "the NIfTI affine is sheared (its voxel axes are not orthogonal): the slices are shown on a square "
            f"grid, and volumes use the affine's voxel volume, {grid.voxel_mm3:.3g} mm3"
        )
        study.note_geometry(sheared, first=True)
    if grid.qform_offset_mm > QFORM_TOLERANCE_MM:
        disagree = (
            f"the NIfTI's qform and sform disagree (a voxel up to {grid.qform_offset_mm:.3g} mm apart): read by its "
            "sform, as nibabel does; check which one the volume's writer meant"
        )
        study.note_geometry(disagree)
    return study


def _image_study(path: Path, files: list[Path], config: ConvertConfig) -> Study:
    rows = [
        (
            {
                "path": str(f),
                "format": "image",
                "slice_key": f.name,
                "patient_id": "",
                "study_id": "",
                "series_id": "",
                "z": k,
            },
            None,
        )
        for k, f in enumerate(files)
    ]
    slices, skipped = _render_all(rows, config, "images")
    study = _finish(Study("images", str(path), path.name, path.name, "pre-windowed images", slices, skipped))
    return harmonise_window(study, config.windows[0])


def harmonise_window(study: Study, target: tuple[float, float]) -> Study:
    """Grey images re-mapped from the window they were exported with to ``target`` (``[lo, hi]`` HU, the
    training slices' first window), so that another site's export shows the networks the contrast
    they learned; the window is estimated from the study's slices together
    (:mod:`ich.data.window_estimate`) and the report states it.

    Images with distinct channels (a release's own composition) are left as they are. A grey study
    whose window cannot be estimated is scored as it was sent and marked unlike the training
    studies (``window_warnings``, which the report's ``unlike_training`` and the terminal carry):
    its verdict rests on a contrast the networks may never have seen.
    """
    if any(s.channels != IMAGE_CHANNELS["grey"] for s in study.slices):
        return study
    greys = [s.image[..., 0] for s in study.slices]
    try:
        estimate = estimate_window(greys)
    except WindowEstimateError as error:
        warning = f"the export window of these grey images could not be estimated ({error}): scored as sent"
        return replace(study, harmonisation=warning, window_warnings=[warning])
    lo, hi = float(target[0]), float(target[1])
    slices = [
        replace(s, image=np.repeat(harmonise(grey, estimate, (lo, hi))[..., None], 3, axis=2))
        for s, grey in zip(study.slices, greys, strict=True)
    ]
    note = (
        f"exported at an estimated {estimate.describe()} from {estimate.pixels} intracranial pixels; "
        f"re-mapped to the training window [{lo:g}, {hi:g}] HU"
    )
    return replace(study, slices=slices, window_estimate=estimate, harmonisation=note)


_KINDS = {"dicom": "dicom", "nifti": "nifti", "image": "images"}


def study_from_manifest(rows: list[dict], raw_dir: str | Path, config: ConvertConfig, *, name: str) -> Study:
    """The study made of raw-cohort manifest ``rows`` (one study of ``data/raw``, any format).

    For the ``report`` stage: the rows carry what a folder cannot say (a CT-ICH slice's bone-window
    image, a NIfTI volume's labels), so the study is converted exactly as ``convert`` did.
    """
    kinds = {row["format"] for row in rows}
    if len(kinds) != 1 or not kinds <= set(_KINDS):
        raise StudyInputError(f"{name}: manifest rows of one format expected, got {sorted(kinds)}")
    kind = _KINDS[kinds.pop()]
    items: list[tuple[dict, int | None]] = []
    for row in rows:
        if kind == "nifti":
            path = Path(row["path"]) if Path(row["path"]).is_absolute() else Path(raw_dir) / row["path"]
            items += [(row, k) for k in range(nifti_slice_count(path))]
        else:
            items.append((row, None))
    slices, skipped = _render_all(items, config, kind, raw_dir)
    return _finish(Study(kind, name, name, "", f"{name} (raw-cohort manifest)", slices, skipped))


def _refuse_unassessable(study: Study) -> None:
    """Refuse a study in which no slice shows a head: blank or saturated images would get a verdict
    from networks that never saw such input, and a negative one would read as a finding."""
    fractions = np.array([head_mask(s.image).mean() for s in study.slices])
    if np.any((fractions >= MIN_HEAD_FRACTION) & (fractions <= MAX_HEAD_FRACTION)):
        return
    blank, saturated = int((fractions < MIN_HEAD_FRACTION).sum()), int((fractions > MAX_HEAD_FRACTION).sum())
    raise StudyInputError(
        f"{study.path}: no slice shows a head, so the networks cannot assess the study: of its {len(fractions)} "
        f"slices {blank} are blank (head level on under {MIN_HEAD_FRACTION:.0%} of the frame) and {saturated} "
        f"saturated (on over {MAX_HEAD_FRACTION:.0%}). Check the export: its window, bit depth and contents"
    )


def _refuse_not_a_head_ct(study: Study) -> None:
    """Refuse a study that does not show a head CT: the networks would score it as confidently as one."""
    why = not_a_head_ct([head_evidence(s.image[..., 0]) for s in study.slices])
    if why:
        raise StudyInputError(
            f"{study.path}: not a head CT the networks can assess: {why}. ich predict reads axial head CT "
            "(DICOM, NIfTI in HU, or images in a brain window, air dark)"
        )


def _refuse_mixed_matrices(study: Study) -> None:
    """Refuse a series with HU whose slices differ in matrix size: slabs average slices pixel by pixel,
    and the mask volume and the SEG stack them on one grid."""
    shapes = pd.Series([s.source_shape for s in study.slices])
    if shapes.nunique() < 2:
        return
    groups = "; ".join(
        f"{n} of {rows}x{cols} (e.g. {study.slices[int(shapes[shapes == shape].index[0])].source_path})"
        for shape, n in shapes.value_counts().items()
        for rows, cols in [shape]
    )
    raise StudyInputError(
        f"{study.path}: its slices differ in matrix size ({groups}): one series has one grid. Resample the "
        "series to one matrix, or point ich predict at the slices of one size"
    )


def _finish(study: Study) -> Study:
    if not study.slices:
        reasons = pd.Series([s["reason"] for s in study.skipped]).value_counts().head(3)
        summary = "; ".join(f"{n} x {reason}" for reason, n in reasons.items())
        first = study.skipped[0]["path"] if study.skipped else "none"
        raise StudyInputError(f"{study.path}: no usable slice in the study ({summary}; the first: {first})")
    _refuse_unassessable(study)
    _refuse_not_a_head_ct(study)
    if study.has_hu:
        _refuse_mixed_matrices(study)
    study.slices.sort(key=lambda s: (s.z, natural_key(s.source_path)))
    if study.has_hu:
        same = [(a, b) for a, b in itertools.pairwise(study.slices) if abs(b.z - a.z) < DUPLICATE_Z_MM]
        if same and len(same) == len(study.slices) - 1:
            raise StudyInputError(
                f"{study.path}: all its {len(study.slices)} slices lie at one position (z {study.slices[0].z:g} mm): "
                "their ImagePositionPatient (or NIfTI affine) does not vary, so they cannot be ordered or measured"
            )
        if same:
            a, b = same[0]
            raise StudyInputError(
                f"{study.path}: {len(same)} slices share a position with another (e.g. {a.source_path} and "
                f"{b.source_path}, z {a.z:g} mm): a series copied twice? Point ich predict at one copy"
            )
    if study.has_hu:
        study.note_geometry(_gaps(study))
    return study


def _gaps(study: Study) -> str:
    """What the report says of steps between slices much wider than the series' own (slices missing)."""
    if len(study.slices) < 3:
        return ""
    z = np.array([s.z for s in study.slices])
    steps, usual = np.diff(z), study.slice_spacing_mm
    wide = np.flatnonzero(steps > GAP_FACTOR * usual)
    return "; ".join(
        f"a gap of {steps[i]:g} mm between z {z[i]:g} and {z[i + 1]:g} mm where the series steps {usual:g} mm: "
        f"about {round(steps[i] / usual) - 1} slices missing? Volumes cover the slices present only"
        for i in wide
    )


def _source_hu(study: Study, s: InputSlice) -> np.ndarray:
    """A source slice's HU image, read again (slabs are rare; keeping every thin slice's HU would not be)."""
    if study.kind == "nifti":
        path, k = s.source_path.rsplit("#", 1)
        return read_nifti_slice(path, int(k)).data
    return read_ct_slice(s.source_path, require_patient_id=False).hu


def with_slabs(study: Study, config: ConvertConfig, slab_mm: float | None) -> Study:
    """``study`` with :attr:`Study.slabs` when its slices are thinner than ``slab_mm`` (else as it is)."""
    spacing = study.slice_spacing_mm
    if not study.has_hu or not needs_slabs(spacing, slab_mm):
        return study
    groups = slab_members(np.array([s.z for s in study.slices]), slab_mm)
    for members in groups:
        hu = mean_slab([_source_hu(study, study.slices[i]) for i in members])
        image, frame = render_hu(hu, config)
        # masks are drawn on the slab: they map back through its frame, which a head crop may
        # place a few pixels from each thin slice's own
        for i in members:
            study.slices[i] = replace(study.slices[i], frame=frame)
        z = float(np.mean([study.slices[i].z for i in members]))
        study.slabs.append(Slab(image=image, members=tuple(int(i) for i in members), z=z))
    study.reformat = (
        f"{len(study.slices)} slices {spacing:g} mm apart, thinner than the {slab_mm:g} mm slices the networks "
        f"were trained on: averaged (mean HU) into {len(groups)} slabs of {slab_mm:g} mm before windowing; "
        "each slab's probability and mask apply to every one of its slices"
    )
    return study


def _is_dicom(path: Path) -> bool:
    """Whether ``path`` has a DICOM header (with or without the preamble): a folder with one is a DICOM study."""
    try:
        read_dicom_header(path, tags=["SOPInstanceUID", "Rows", "StudyInstanceUID"])
    except UnusableSliceError:
        return False
    return True


def read_study(path: str | Path, config: ConvertConfig, slab_mm: float | None = None) -> Study:
    """The study at ``path``: a folder, or a DICOM, NIfTI or image file; a series with HU thinner
    than ``slab_mm`` (the training slices' thickness; ``None``: unknown) is reformatted (:func:`with_slabs`)."""
    return with_slabs(_read(Path(path), config), config, slab_mm)


def _read(path: Path, config: ConvertConfig) -> Study:
    path = Path(path)
    if not path.exists():
        raise StudyInputError(f"{path}: no such file or folder")
    name = path.name.lower()
    if path.is_file():
        if name.endswith((".nii", ".nii.gz")):
            return _nifti_study(path, config)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return _image_study(path, [path], config)
        return _dicom_study(path, [path], config)
    candidates = iter_files(path, suffixes=None)  # anything that may be DICOM
    images = iter_files(path, suffixes=IMAGE_SUFFIXES)
    if not candidates and not images:
        volumes = iter_files(path, suffixes={".nii", ".gz"})
        if volumes:
            raise StudyInputError(f"{path}: holds NIfTI files; pass one volume, e.g. {volumes[0]}")
        others = [p for p in path.rglob("*") if p.is_file()]
        what = f"{len(others)} files, none DICOM or an image (e.g. {others[0].name})" if others else "no file"
        raise StudyInputError(f"{path}: nothing to read: {what}")
    if images and not any(_is_dicom(p) for p in candidates):
        ignored = [{"path": str(p), "reason": "not an image file in a folder of images"} for p in candidates]
        slices = ct_ich_slice_images(images)  # the CT-ICH layout keeps each slice's mask beside it
        masks = sorted(set(images) - set(slices))
        ignored += [{"path": str(p), "reason": "a bleed mask (<slice>_HGE_Seg), not a slice"} for p in masks]
        named = [p for p in slices if MASK_NAME in p.stem.lower()]
        ignored += [{"path": str(p), "reason": f"a mask ('{MASK_NAME}' in its name), not a slice"} for p in named]
        slices = [p for p in slices if p not in named]
        study = _image_study(path, slices, config)
        study.skipped += ignored
        return study
    study = _dicom_study(path, candidates, config)
    study.skipped += [{"path": str(p), "reason": "an image file in a DICOM study (not read)"} for p in images]
    return study
