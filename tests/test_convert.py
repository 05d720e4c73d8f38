"""The converter's fast paths give the same result as the straightforward ones."""

from __future__ import annotations

import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from ich.data.cohort_conversion import ConvertConfig, convert_cohort, pseudonym
from ich.data.windowing import DEFAULT_WINDOWS, stack_windows, stack_windows_stored
from ich.io.dicom import read_ct_slice
from ich.io.slices import member_info, output_path, read_slice
from ich.labels import LABELS
from tests.dicom_fixtures import UID_ROOT, phantom_hu, write_ct_slice


@pytest.mark.parametrize(
    ("dtype", "slope", "intercept"),
    [(np.int16, 1.0, -1024.0), (np.uint16, 1.0, -1024.0), (np.int16, 0.5, -2048.25), (np.uint8, 3.0, -200.0)],
)
def test_stored_value_lookup_table_equals_float_windowing(dtype, slope, intercept):
    info = np.iinfo(dtype)
    stored = np.random.default_rng(0).integers(info.min, info.max, size=(64, 48), endpoint=True).astype(dtype)
    hu = stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    expected = stack_windows(hu, DEFAULT_WINDOWS)
    assert np.array_equal(stack_windows_stored(stored, slope, intercept, DEFAULT_WINDOWS), expected)
    wide = stored.astype(np.int32)  # no table for 32-bit values: the float path, same result
    assert np.array_equal(stack_windows_stored(wide, slope, intercept, DEFAULT_WINDOWS), expected)


def test_reader_hu_is_the_rescaled_stored_values(tmp_path):
    ct = read_ct_slice(write_ct_slice(tmp_path / "s.dcm", slope=0.5, intercept=-2048.0))
    assert ct.pixels.dtype == np.int16 and ct.hu.dtype == np.float32
    np.testing.assert_array_equal(ct.hu, ct.pixels.astype(np.float32) * 0.5 - 2048.0)


def test_process_pool_writes_the_same_outputs_as_one_process(tiny_cohort, tmp_path):
    index, quarantine = convert_cohort(tiny_cohort["raw"], tmp_path, ConvertConfig(size=64, workers=2))
    pd.testing.assert_frame_equal(index, tiny_cohort["index"])
    assert (index["channels"] == "hu").all()
    assert quarantine.empty and tiny_cohort["quarantine"].empty
    for rel in [*index["image_path"], *index["mask_path"]]:
        assert (tmp_path / rel).read_bytes() == (tiny_cohort["converted"] / rel).read_bytes(), rel


def test_duplicate_key_keeps_the_first_file_whatever_wrote_first(tmp_path):
    """Workers race for a duplicate key's file name; the index must end up with the first file's
    image at the canonical name. A stale file at that name makes both duplicates lose the race."""
    raw = tmp_path / "raw"
    common = {"patient_id": "P", "study_uid": f"{UID_ROOT}7", "series_uid": f"{UID_ROOT}7.1"}
    paths = [
        write_ct_slice(raw / "a.dcm", sop_uid=f"{UID_ROOT}7.1.1", z=0.0, hu=phantom_hu(seed=1), **common),
        write_ct_slice(raw / "b.dcm", sop_uid=f"{UID_ROOT}7.1.2", z=5.0, hu=phantom_hu(seed=2), **common),
        write_ct_slice(
            raw / "b_again.dcm", sop_uid=f"{UID_ROOT}7.1.2", z=5.0, hu=phantom_hu(seed=3, lesion=True), **common
        ),
    ]
    pd.DataFrame({"path": [p.name for p in paths], "format": "dicom", "mask_path": ""}).to_csv(
        raw / "manifest.csv", index=False
    )
    keys = [f"{UID_ROOT}7.1.1", f"{UID_ROOT}7.1.2"]
    pd.DataFrame([{"level": "slice", "key": k, **dict.fromkeys(LABELS, 0)} for k in keys]).to_csv(
        raw / "labels.csv", index=False
    )
    (raw / "source.json").write_text('{"name": "race", "synthetic": false, "has_hu": true, "citation": ""}')
    out = tmp_path / "out"
    config = ConvertConfig(size=64, workers=1)
    stale = out / output_path("images", pseudonym(keys[1], config.id_salt))
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over")

    index, quarantine = convert_cohort(raw, out, config)
    assert quarantine["reason"].str.startswith(f"duplicate SOPInstanceUID/slice key {keys[1]}").tolist() == [True]
    kept = index[index["source_path"] == str(paths[1])]
    assert kept["image_path"].item() == str(stale.relative_to(out))
    expected = cv2.resize(stack_windows(read_ct_slice(paths[1]).hu), (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(cv2.imread(str(stale))[..., ::-1], expected)
    assert sorted(p.name for p in out.rglob("*.png")) == sorted(Path(p).name for p in index["image_path"])


def test_packed_archives_hold_the_same_slices_whatever_the_worker_count(tiny_cohort, tmp_path):
    config = ConvertConfig(size=64, workers=1, shard_size=40)
    packed, _ = convert_cohort(tiny_cohort["raw"], tmp_path / "one", config)
    again, _ = convert_cohort(tiny_cohort["raw"], tmp_path / "two", replace(config, workers=2))
    pd.testing.assert_frame_equal(packed, again)
    archives = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.zip"))
    assert [str(a) for a in archives] == [
        f"{f}/{k:06d}.zip" for f in ("images", "masks") for k in range(3)
    ]  # 96 slices
    for archive in archives:  # byte-identical: DVC sees an unchanged output
        assert (tmp_path / "one" / archive).read_bytes() == (tmp_path / "two" / archive).read_bytes()

    files = tiny_cohort["index"]
    paths = ["image_path", "mask_path"]
    pd.testing.assert_frame_equal(packed.drop(columns=paths), files.drop(columns=paths))
    assert packed["image_path"].str.fullmatch(r"images/\d{6}\.zip/[0-9a-f]{16}\.png").all()
    for column, flags in (("image_path", cv2.IMREAD_COLOR), ("mask_path", cv2.IMREAD_GRAYSCALE)):
        for ref, file_ref in zip(packed[column], files[column], strict=True):
            expected = read_slice(tiny_cohort["converted"] / file_ref, flags)
            assert np.array_equal(read_slice(tmp_path / "one" / ref, flags), expected)


def test_read_slice_names_a_missing_archive_member(tmp_path):
    archive = tmp_path / "000000.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(member_info("a.png"), cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())
    assert read_slice(archive / "a.png", cv2.IMREAD_GRAYSCALE).shape == (4, 4)
    with pytest.raises(FileNotFoundError, match=r"b\.png is not in .*000000\.zip"):
        read_slice(archive / "b.png")
