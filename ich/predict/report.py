"""``report.json`` and ``report.html``: what ``ich predict`` found in one study, for a program and a person.

The HTML is one self-contained file: images are embedded as PNG data URIs, styles are inline,
there is no script and no external reference, so it opens anywhere without a network and can
be attached to a ticket or an e-mail as it is.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure

from ich.data.resize import resize_square
from ich.explain.gradcam import overlay
from ich.io.atomic import write_json
from ich.predict.artefacts import Artefacts
from ich.predict.infer import StudyResult
from ich.predict.inputs import Study
from ich.predict.names import DISCLAIMER, NOT_A_FINDING, OUTLINES, SYNTHETIC_WARNING
from ich.segmentation.map_evaluation import scaled_contours

BELOW_DECISION = "above the slice threshold, below the study decision"
"""What a slice above the slice threshold is in a negative study: not "flagged"."""
TILE = 256  # px of each image shown per flagged slice
BLEED_RGB = (255, 40, 40)


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def build_report(study: Study, result: StudyResult, artefacts: Artefacts, outputs: dict[str, str]) -> dict[str, Any]:
    """The JSON-ready report (no wall times: the same study and artefacts give the same report)."""
    points = artefacts.operating_points
    slices = []
    for i, s in enumerate(study.slices):
        row: dict[str, Any] = {
            "position": i,
            "source": s.source_path,
            "sop_instance_uid": s.sop_uid or None,
            "z_mm": _r(s.z, 3) if study.has_hu else None,
            "probability": _r(result.slice_probs[i]),
            "flagged": i in result.flagged,
            "above_slice_threshold": i in result.above_threshold,
        }
        if result.subtype_probs:
            row["subtypes"] = {k: _r(v[i]) for k, v in result.subtype_probs.items()}
        if result.masks is not None:
            row["bleed_pixels"] = int(result.masks[i].sum())
        slices.append(row)
    subtypes = None
    if result.subtype_probs:
        subtypes = {
            "model": artefacts.subtype_model,
            "study_probabilities": {k: _r(v.max()) for k, v in result.subtype_probs.items()},
            "note": "maximum over slices of the multi-label model's probability",
        }
    chosen = points["patient_youden"]
    return {
        "warning": SYNTHETIC_WARNING if artefacts.training["synthetic"] else None,
        "disclaimer": DISCLAIMER,
        "provenance": {
            "training_cohort": artefacts.training,
            "validation": {
                "chosen_on": points["chosen_on"],
                "patients": points["n_patients"],
                "slices": points["n_slices"],
                "study_score": chosen["study_score"],
                "roc_auc": chosen.get("val_roc_auc_by_study_score", {}).get(chosen["study_score"]),
                "sensitivity": chosen["val_sensitivity"],
                "specificity": chosen["val_specificity"],
            },
            "dvc_lock_md5": artefacts.versions,
            "bundle_md5": artefacts.bundle_md5,
        },
        "input": {
            "path": study.path,
            "kind": study.kind,
            "study_instance_uid": study.study_uid,
            "series_instance_uid": study.series_uid,
            "series_description": study.series_description,
            "slices_used": len(study.slices),
            "channels": study.channels,
            "windows": artefacts.windows_note if study.has_hu else None,
            "reformatted": study.reformat or None,
            "geometry": study.geometry_note or None,
            "window_estimate": study.harmonisation or None,
            "slabs": len(study.slabs) or None,
            "statistics": {k: _r(v) for k, v in result.statistics.items()},
            "unlike_training": result.unfamiliar,
            "slices_skipped": study.skipped,
            "series_not_used": study.other_series,
        },
        "decision": {
            "positive": bool(result.positive),
            "finding": "intracranial hemorrhage suspected" if result.positive else "no intracranial hemorrhage found",
            "model": artefacts.decider,
            "members": artefacts.weights,
            "study_score": _r(result.study_score),
            "study_probability_calibrated": _r(result.study_probability),
            "operating_point": {"name": "patient_youden", **points["patient_youden"], "chosen_on": points["chosen_on"]},
        },
        "subtypes": subtypes,
        "slices_summary": slice_summary(result),
        "flagged_slices": result.flagged,
        "below_decision_slices": [] if result.positive else result.above_threshold,
        "shown_slices": result.shown,
        "flag_point": {"threshold": result.flag_threshold, "chosen_on": points["chosen_on"]},
        "bleed": None
        if artefacts.segmenter is None
        else {
            "segmenter": artefacts.segmenter.name,
            "volume_ml": _r(result.volume_ml, 3),
            "method": result.volume_note,
            "outlined_slices": OUTLINES[result.outline],
            "volume_every_slice_ml": _r(result.volume_every_slice_ml, 3),
            "map_threshold": artefacts.segmenter.post.threshold,
        },
        "gradcam_model": artefacts.cam_model,
        "slices": slices,
        "versions": {"dvc_lock_md5": artefacts.versions},
        "outputs": outputs,
    }


def _data_uri(rgb: np.ndarray) -> str:
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError("cannot encode an image as PNG")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")


def _strip(result: StudyResult) -> str:
    """The per-slice probability along z as an embedded PNG."""
    fig = Figure(figsize=(9, 2.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(result.slice_probs))
    colours = ["#d62728" if i in result.flagged else "#ff9800" if i in result.above_threshold else "#1f77b4" for i in x]
    ax.bar(x, result.slice_probs, color=colours, width=0.8)
    ax.axhline(result.flag_threshold, color="#d62728", lw=1, ls="--", label="slice threshold")
    ax.set(xlim=(-0.6, len(x) - 0.4), ylim=(0, 1), xlabel="slice (inferior to superior)", ylabel="P(bleed)")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _grey(image: np.ndarray) -> np.ndarray:
    """The first window (brain) of a converted slice, as RGB at the tile size."""
    grey = resize_square(image[..., 0], TILE)
    return np.repeat(grey[..., None], 3, axis=2)


def _contour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    tile = _grey(image).copy()
    cv2.drawContours(tile, scaled_contours(mask, TILE / mask.shape[0]), -1, BLEED_RGB, 2)
    return tile


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(rows: list[dict[str, str]], empty: str) -> str:
    if not rows:
        return f"<p class='muted'>{_esc(empty)}</p>"
    body = "".join(f"<tr><td>{_esc(r['path'])}</td><td>{_esc(r['reason'])}</td></tr>" for r in rows)
    return f"<table><tr><th>file</th><th>reason</th></tr>{body}</table>"


def slice_status(result: StudyResult, i: int) -> str:
    """How slice ``i`` is described: flagged only in a positive study."""
    if i in result.flagged:
        return "flagged"
    return BELOW_DECISION if i in result.above_threshold else "below the slice threshold"


def slice_summary(result: StudyResult) -> str:
    """The slices in one sentence that agrees with the headline: "flagged" only in a positive study."""
    n = len(result.slice_probs)
    if result.positive:
        return f"{len(result.flagged)} of {n} slices flagged"
    if result.above_threshold:
        return f"{len(result.above_threshold)} of {n} slices {BELOW_DECISION}"
    return f"none of {n} slices above the slice threshold"


def _counts(by_set: dict[str, int]) -> str:
    return f"{sum(by_set.values())} (" + ", ".join(f"{k} {v}" for k, v in by_set.items()) + ")"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render_html(study: Study, result: StudyResult, report: dict[str, Any]) -> str:
    """The self-contained page of ``report``."""
    decision = report["decision"]
    verdict = "positive" if decision["positive"] else "negative"
    panels = []
    seen_by_networks, slab_of = study.network_images, study.slab_of_slice
    for i in result.shown:
        image = seen_by_networks[slab_of[i]]  # a slab's image for a reformatted series: what was scored
        cells = [("windowed image", _grey(image))]
        if i in result.cams:
            cells.append((f"Grad-CAM ({report['gradcam_model']})", overlay(_grey(image), result.cams[i])))
        if result.masks is not None:
            area = f"{int(result.masks[i].sum())} px"
            cells.append((f"bleed contour ({area})", _contour(image, result.masks[i])))
        figures = "".join(
            f"<figure><img src='{_data_uri(rgb)}' width='{TILE}' height='{TILE}' alt='{_esc(caption)}'>"
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
            for caption, rgb in cells
        )
        z = report["slices"][i]["z_mm"]
        where = f"z {z:g} mm" if z is not None else f"file {_esc(Path(study.slices[i].source_path).name)}"
        if study.slabs:
            slab = study.slabs[slab_of[i]]
            where += f" (slab of {len(slab.members)} slices, mean z {slab.z:g} mm)"
        panels.append(
            f"<section class='slice'><h3>slice {i} &middot; {where} &middot; P = {result.slice_probs[i]:.3f} "
            f"&middot; {_esc(slice_status(result, i))}</h3><div class='row'>{figures}</div></section>"
        )
    bleed = report["bleed"]
    if bleed is None:
        volume = "no segmenter"
    else:
        amount = f"{bleed['volume_ml']:.2f} mL" if bleed["volume_ml"] is not None else "not available"
        every = bleed["volume_every_slice_ml"]
        elsewhere = f"; on every slice {every:.2f} mL" if every is not None and every != bleed["volume_ml"] else ""
        volume = f"{amount} <span class='muted'>({_esc(bleed['method'])}; {_esc(bleed['outlined_slices'])}{elsewhere})</span>"
        if not decision["positive"]:
            volume = f"the segmenter outlines {volume}, {NOT_A_FINDING}"
    subtypes = ""
    if report["subtypes"]:
        items = "".join(f"<li>{_esc(k)}: {v:.3f}</li>" for k, v in report["subtypes"]["study_probabilities"].items())
        subtypes = f"<h2>Subtypes <span class='muted'>({_esc(report['subtypes']['model'])})</span></h2><ul>{items}</ul>"
    point = decision["operating_point"]
    versions = "".join(
        f"<tr><td>{_esc(k)}</td><td><code>{_esc(v)}</code></td></tr>"
        for k, v in report["versions"]["dvc_lock_md5"].items()
    )
    inp = report["input"]
    training, validation = report["provenance"]["training_cohort"], report["provenance"]["validation"]
    warning = f"<div class='warning'>{_esc(report['warning'].capitalize())}</div>" if report["warning"] else ""
    unlike = ""
    if inp["unlike_training"]:
        items = "".join(f"<li>{_esc(note)}</li>" for note in inp["unlike_training"])
        unlike = f"<div class='note'><b>This study is unlike the training studies</b>: the result below may not hold.<ul>{items}</ul></div>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ICH report: {_esc(inp["study_instance_uid"])}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}}
.banner{{padding:14px 18px;border-radius:6px;font-size:1.4em;font-weight:600;color:#fff}}
.positive{{background:#c62828}} .negative{{background:#2e7d32}}
.warning{{padding:12px 18px;margin-bottom:10px;border-radius:6px;font-size:1.2em;font-weight:600;background:#4a148c;color:#fff}}
.note{{border:1px solid #e0a800;background:#fff8e1;padding:8px 12px;margin:12px 0;border-radius:4px}}
.muted{{color:#666;font-weight:normal}} .row{{display:flex;gap:8px;flex-wrap:wrap}}
figure{{margin:0}} figcaption{{font-size:0.85em;color:#444}}
table{{border-collapse:collapse;font-size:0.85em}} td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}
</style></head><body>
{warning}{unlike}<div class="banner {verdict}">{_esc(decision["finding"].capitalize())}</div>
<p>Study score {decision["study_score"]:.3f} ({_esc(point["study_score"].replace("_", " "))}; calibrated {decision["study_probability_calibrated"]:.3f})
against threshold {point["threshold"]:.3f}, chosen on the validation set (sensitivity {point["val_sensitivity"]:.2f},
specificity {point["val_specificity"]:.2f} there). Model: <b>{_esc(decision["model"])}</b>.</p>
<div class="note"><b>{_esc(report["disclaimer"])}</b></div>
<h2>Probability along the study</h2>
<img src="{_strip(result)}" width="900" height="220" alt="per-slice probability">
<p>{_esc(slice_summary(result))} (slice threshold {result.flag_threshold:.3f}).
Bleed volume: {volume}</p>
{subtypes}
<h2>Most suspicious slices <span class='muted'>(highest probability first)</span></h2>
{"" if report["gradcam_model"] else "<p class='muted'>No Grad-CAM: a study model scores its slices jointly.</p>"}
{"".join(panels)}
<h2>Input</h2>
<p>{_esc(inp["kind"])}: {_esc(inp["path"])}<br>series {_esc(inp["series_description"] or inp["series_instance_uid"])},
{inp["slices_used"]} slices used; channels: {_esc("; ".join(inp["channels"]))}{"; windowed with " + _esc(inp["windows"]) if inp["windows"] else ""}</p>
{"<p class='note'>Reformatted: " + _esc(inp["reformatted"]) + "</p>" if inp["reformatted"] else ""}
{"<p class='note'>Geometry: " + _esc(inp["geometry"]) + "</p>" if inp["geometry"] else ""}
{"<p class='note'>Window: " + _esc(inp["window_estimate"]) + "</p>" if inp["window_estimate"] else ""}
<h3>Skipped slices</h3>{_table(inp["slices_skipped"], "none")}
<h3>Series not used</h3>{_table(inp["series_not_used"], "none")}
<h2>What the models know</h2>
<p>Trained on <b>{_esc(training["source"])}</b>{" (synthetic phantoms, not patient data)" if training["synthetic"] else ""}:
{_esc(_counts(training["patients"]))} patients, {_esc(_counts(training["slices"]))} slices.
<span class='muted'>{_esc(training["citation"])}</span><br>
Operating point chosen on {_esc(validation["chosen_on"])}: {validation["patients"]} patients, {validation["slices"]} slices;
study ROC-AUC there {_fmt(validation["roc_auc"])}.</p>
<h2>Versions</h2><table><tr><th>artefact</th><th>dvc.lock md5</th></tr>{versions}</table>
</body></html>
"""


def write_report(
    out_dir: Path, study: Study, result: StudyResult, artefacts: Artefacts, outputs: dict[str, str]
) -> dict:
    """Write ``report.json`` and ``report.html`` into ``out_dir``; return the report."""
    report = build_report(study, result, artefacts, outputs)
    write_json(out_dir / "report.json", report, sort_keys=False)  # the warning and the decision first
    (out_dir / "report.html").write_text(render_html(study, result, report), encoding="utf-8")
    return report
