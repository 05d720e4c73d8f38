"""The real mess of DICOM at the ``convert`` level: one raw cohort mixing good studies with every
kind of bad item, converted in one go.

Every bad item must land in the quarantine table with a reason naming its problem, the good
slices must all be converted, and the counts must balance: files in = slices written + files
quarantined (label rows without an image are quarantined too, as ``kind == "label"``).
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from pydicom import dcmread
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, RLELossless

sys.path.insert(0, str(Path(__file__).parent))

from ich.data.cohort_conversion import ConvertConfig, convert_cohort
from ich.io.raw_cohort import write_raw_cohort
from ich.io.slices import packed_ref, read_slice
from ich.labels import LABELS
from tests.dicom_fixtures import (
    UID_ROOT,
    phantom_hu,
    write_bad_matrix,
    write_compressed,
    write_ct_slice,
    write_garbage,
    write_no_decoder,
    write_no_pixel_data,
    write_non_ct,
    write_truncated,
)

SIZE = 32


class Cohort:
    """Builds ``raw/`` file by file: the manifest, the label rows and what each file should become."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest: list[str] = []
        self.labels: list[dict] = []
        self.converted: list[Path] = []  # files that must reach the index
        self.quarantined: dict[Path, str] = {}  # file -> fragment its reason must contain

    def path(self, name: str) -> Path:
        return self.root / "dicom" / f"{name}.dcm"

    def slice(self, name: str, study: str, k: int, *, label: bool = True, writer=write_ct_slice, **kwargs) -> Path:
        """A valid slice ``k`` of ``study`` (patient = study), labelled unless ``label=False``."""
        sop = f"{UID_ROOT}{study}.{k}"
        path = writer(
            self.path(name),
            patient_id=f"PAT-{study}",
            study_uid=f"{UID_ROOT}{study}",
            series_uid=f"{UID_ROOT}{study}.0",
            sop_uid=sop,
            z=5.0 * k,
            hu=phantom_hu(256, 256, seed=k, lesion=k == 1),
            **kwargs,
        )
        self.manifest.append(str(path.relative_to(self.root)))
        if label:
            self.label(sop, any=int(k == 1), intraparenchymal=int(k == 1))
        return path

    def label(self, key: str, level: str = "slice", **values: int) -> None:
        self.labels.append({"level": level, "key": key, **{name: values.get(name, 0) for name in LABELS}})

    def bad(self, name: str, writer, fragment: str) -> Path:
        path = writer(self.path(name))
        self.manifest.append(str(path.relative_to(self.root)))
        self.quarantined[path] = fragment
        return path

    def write(self) -> None:
        write_raw_cohort(
            self.root,
            manifest=[{"path": path, "format": "dicom"} for path in self.manifest],
            labels=self.labels,
            source={"name": "bad-inputs", "synthetic": True, "has_hu": True, "citation": "test fixture"},
        )


def stored_refs(out: Path) -> list[str]:
    """Every slice PNG under ``out``: loose files and archive members, as index references."""
    refs = [str(p.relative_to(out)) for p in out.rglob("*.png")]
    for archive in out.rglob("*.zip"):
        with zipfile.ZipFile(archive) as z:
            refs += [packed_ref(str(archive.relative_to(out)), name) for name in z.namelist()]
    return sorted(refs)


ORPHAN_LABEL = f"{UID_ROOT}999.1"
ORPHAN_STUDY = f"{UID_ROOT}998"


@pytest.fixture(scope="module", params=[0, 4], ids=["files", "packed"])
def messy(request, tmp_path_factory) -> tuple[Cohort, pd.DataFrame, pd.DataFrame, Path]:
    """The cohort converted with one PNG file per slice, and packed 4 slices to an archive."""
    root = tmp_path_factory.mktemp("messy")
    c = Cohort(root / "raw")

    # study 1: four plain slices, one RLE-compressed slice (pydicom decodes RLE), then problems
    a = [c.slice(f"s1_{k}", "1", k) for k in range(4)]
    c.converted += a
    c.converted.append(c.slice("s1_rle", "1", 4, writer=write_compressed, transfer_syntax=RLELossless))
    c.quarantined[c.slice("s1_unlabelled", "1", 5, label=False)] = "image without a label row"
    duplicate = c.path("s1_copy_of_0")
    shutil.copy(a[0], duplicate)
    c.manifest.append(str(duplicate.relative_to(c.root)))
    c.quarantined[duplicate] = f"duplicate SOPInstanceUID/slice key {UID_ROOT}1.0 (first seen in {a[0]})"

    # study 2: multi-valued WindowCenter/Width is fine (noted); JPEG 2000 without its decoder is not
    c.converted += [c.slice(f"s2_{k}", "2", k) for k in range(2)]
    c.converted.append(c.slice("s2_multi_window", "2", 2, window_center=[40.0, 450.0], window_width=[80.0, 1500.0]))
    no_plugin = c.slice("s2_j2k", "2", 3, writer=write_compressed, transfer_syntax=JPEG2000Lossless)
    c.quarantined[no_plugin] = (
        "compressed transfer syntax JPEG 2000 Image Compression (Lossless Only) (1.2.840.10008.1.2.4.90) "
        "has no installed decoder: pip install pylibjpeg pylibjpeg-openjpeg"
    )

    # study 3: a single slice; study 4: two slices of which one has no rescale -> one usable slice
    c.quarantined[c.slice("s3_only", "3", 0)] = "study has fewer than 2 usable slices"
    c.quarantined[c.slice("s4_0", "4", 0)] = "study has fewer than 2 usable slices"
    no_rescale = c.slice("s4_1_no_rescale", "4", 1)
    ds = dcmread(no_rescale)
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.save_as(no_rescale)
    c.quarantined[no_rescale] = "missing RescaleSlope/RescaleIntercept: cannot convert to HU"

    # files that are not usable slices at all
    c.bad("truncated", write_truncated, "truncated file")
    c.bad("corrupted", write_garbage, "not a DICOM file")
    c.bad("no_pixels", write_no_pixel_data, "missing PixelData: the file holds no image")
    c.bad("jpeg_xl", write_no_decoder, "compressed transfer syntax JPEG XL Lossless (1.2.840.10008.1.2.4.110)")
    c.bad("mr", write_non_ct, "non-CT modality 'MR': only CT slices are used")
    c.bad("thumbnail", write_bad_matrix, "unexpected matrix size 128x128")
    c.manifest.append("dicom/listed_but_absent.dcm")
    c.quarantined[c.path("listed_but_absent")] = "file not found"

    # label rows that no converted image carries
    c.label(ORPHAN_LABEL)
    c.label(ORPHAN_STUDY, level="study", any=1)
    c.write()

    # pylibjpeg-openjpeg "not installed": pydicom keeps the plugins whose packages import in the
    # decoder's ``_available``; emptying it is what pydicom sees without them (it could not
    # decode either). workers=1 keeps the patch in this process.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(get_decoder(JPEG2000Lossless), "_available", {})
        config = ConvertConfig(size=SIZE, workers=1, shard_size=request.param)
        index, quarantine = convert_cohort(c.root, root / "converted", config)
    return c, index, quarantine, root / "converted"


def test_every_bad_item_is_quarantined_with_its_specific_reason(messy):
    cohort, _, quarantine, _ = messy
    files = quarantine[quarantine["kind"] == "file"]
    assert files["source_path"].is_unique
    reasons = dict(zip(files["source_path"], files["reason"], strict=True))
    assert set(reasons) == {str(p) for p in cohort.quarantined}
    for path, fragment in cohort.quarantined.items():
        assert fragment in reasons[str(path)], (path.name, reasons[str(path)])
    assert (quarantine["stage"] == "convert").all()


def test_label_rows_without_images_are_quarantined(messy):
    _, _, quarantine, _ = messy
    labels = quarantine[quarantine["kind"] == "label"].set_index("source_path")["reason"].to_dict()
    no_image = "label row without an image (no readable slice has this key)"
    assert labels == {
        f"labels.csv:{ORPHAN_LABEL}": no_image,
        f"labels.csv:{UID_ROOT}2.3": no_image,  # its file could not be decoded
        f"labels.csv:{UID_ROOT}4.1": no_image,  # its file has no rescale
        f"labels.csv:{ORPHAN_STUDY}": "study label without any image",
    }
    # labels of slices that were read but then quarantined (study too small) are not repeated here


def test_good_slices_are_all_converted_and_outputs_match_the_index(messy):
    cohort, index, _, out = messy
    assert sorted(index["source_path"]) == sorted(str(p) for p in cohort.converted)
    assert sorted(index.groupby("study_id")["slice_order"].apply(sorted).tolist()) == [[0, 1, 2], [0, 1, 2, 3, 4]]
    assert stored_refs(out) == sorted(index["image_path"])  # quarantined-after-writing outputs were removed
    assert all(zipfile.ZipFile(archive).namelist() for archive in out.rglob("*.zip"))  # emptied ones deleted
    for ref in index["image_path"]:
        assert read_slice(out / ref).shape == (SIZE, SIZE, 3)
    multi = index[index["source_path"] == str(cohort.path("s2_multi_window"))]
    assert (
        multi["notes"].item()
        == "multi-valued WindowCenter/WindowWidth ([40.0, 450.0] / [80.0, 1500.0]): first value used"
    )
    assert index["intraparenchymal"].sum() == 2  # slice 1 of studies 1 and 2


def test_counts_balance(messy):
    cohort, index, quarantine, _ = messy
    files_in = len(cohort.manifest)
    assert files_in == len(cohort.converted) + len(cohort.quarantined) == 21
    assert files_in == len(index) + int((quarantine["kind"] == "file").sum())
