"""Write a scoring run's outputs: results.json, per_entity.csv, report.md and its plots.

Every output names the settings its numbers depend on (IoU threshold, role-aware or not, judge
model and prompt version, embedding model); published baseline rows are printed beside ours
and marked as published figures.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from vigil360.bench.baselines import Baselines
from vigil360.bench.scoring.metrics import VideoScore, breakdowns, summarise
from vigil360.bench.scoring.run import ScoreSettings, Warnings
from vigil360.records import atomic_write_text

_MAIN_COLUMNS = (
    ("iou", "IoU"),
    ("iou_matched", "IoU (matches)"),
    ("cap", "Cap"),
    ("cap_matched", "Cap (matches)"),
    ("fsc_per_entity", "Fsc (per-entity mean)"),
    ("fsc_of_means", "Fsc (of means)"),
    ("fpe", "FPE"),
    ("embed", "Embed-cos"),
)
_ENTITY_FIELDS = (
    "video_id", "dataset", "anomaly_class", "location", "gt_entity_id", "role", "pred_entity_id", "iou",
    "matched", "cap", "cap_status", "visual", "motion", "semantic", "embed", "cap_error",
)


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(cell, 2 if isinstance(cell, float) and abs(cell) < 10 else 1)
                                for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def build_results(videos: Sequence[VideoScore], settings: ScoreSettings, warnings: Warnings) -> dict:
    entities = [e for v in videos for e in v.entities]
    return {
        "settings": settings.model_dump(),
        "overall": summarise(entities, videos),
        "breakdowns": breakdowns(entities, videos),
        "warnings": {
            "gt_without_prediction": len(warnings.gt_without_prediction),
            "prediction_without_gt": len(warnings.prediction_without_gt),
            "examples": {k: v[:10] for k, v in warnings.model_dump().items()},
        },
        "notes": {
            "scale": "IoU, Cap, Fsc and Embed-cos in 0-100; FPE in false-positive entities per video",
            "fsc_per_entity": "mean over entities of the harmonic mean of the entity's Cap and IoU (default)",
            "fsc_of_means": "harmonic mean of the dataset's mean Cap and mean IoU",
            "embed": "sentence-embedding cosine x 100 (offline score; not Cap)",
        },
    }


def _per_entity_csv(videos: Sequence[VideoScore]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_ENTITY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for video in videos:
        for row in video.entities:
            data = row.model_dump(include=set(_ENTITY_FIELDS))
            data.update(row.cap_scores or {})
            writer.writerow(data)
    return buffer.getvalue()


def _save(figure, out_dir: Path, name: str) -> str:
    """Write one plot as PNG, free its memory (reports run over many datasets), return its name."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(out_dir / name, dpi=100)
    plt.close(figure)
    return name


def _plots(out_dir: Path, videos: Sequence[VideoScore], results: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    classes = results["breakdowns"]["anomaly_class"]
    names = list(classes)
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * len(names) + 2), 3.2))
    metrics = [m for m in ("iou", "cap", "fsc_per_entity") if any(classes[n][m] is not None for n in names)]
    width = 0.8 / max(1, len(metrics))
    for k, metric in enumerate(metrics):
        values = [classes[n][metric] or 0.0 for n in names]
        axis.bar([i + k * width for i in range(len(names))], values, width=width, label=metric)
    axis.set_xticks([i + width * (len(metrics) - 1) / 2 for i in range(len(names))], names, rotation=20)
    axis.set_ylabel("0-100")
    axis.set_ylim(0, 100)
    axis.legend(fontsize=8)
    axis.set_title("Per anomaly class")
    written.append(_save(figure, out_dir, "per_class.png"))

    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    tta = sorted(v.time_to_alert_s for v in videos if v.time_to_alert_s is not None)
    positives = sum(v.onset_frame is not None for v in videos)
    if tta and positives:
        # The CDF is over all positive videos, so it tops out at the recall of correct alerts.
        axis.step(tta, [(i + 1) / positives for i in range(len(tta))], where="post")
    axis.axvline(0.0, color="grey", linewidth=0.8)
    axis.set_xlabel("time to alert (s, negative = before onset)")
    axis.set_ylabel("fraction of anomalous videos")
    axis.set_ylim(0, 1)
    axis.set_title("Time-to-alert CDF")
    written.append(_save(figure, out_dir, "time_to_alert_cdf.png"))

    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    axis.hist([e.iou for v in videos for e in v.entities], bins=20, range=(0.0, 1.0))
    axis.axvline(results["settings"]["threshold"], color="red", linewidth=1, label="match threshold")
    axis.set_xlabel("spatio-temporal IoU per ground-truth entity")
    axis.set_ylabel("entities")
    axis.legend(fontsize=8)
    axis.set_title("IoU histogram")
    written.append(_save(figure, out_dir, "iou_histogram.png"))
    return written


def _markdown(results: dict, baselines: Baselines | None, plots: list[str], system: str | None) -> str:
    settings, overall = results["settings"], results["overall"]
    judge = (
        f"{settings['judge_model']} (prompt {settings['judge_prompt_version']})"
        if settings["judge_model"] else "none (no Cap)"
    )
    out = [
        f"# Scoring report{f': {system}' if system else ''}",
        "",
        f"- videos: {overall['videos']}, ground-truth entities: {overall['gt_entities']}, "
        f"predicted entities: {overall['pred_entities']}, matches: {overall['matches']}",
        f"- IoU threshold: {settings['threshold']}; role-aware assignment: {settings['role_aware']}",
        f"- judge: {judge}; offline caption score: {settings['embed_model'] or 'not computed'}",
        f"- Cap failures (judge reply never parsed; `--restart` retries them, cached verdicts cost nothing): "
        f"{overall['cap_failed']}; "
        f"entities without a reference caption: {overall['cap_no_reference']}",
        f"- warnings: {results['warnings']['gt_without_prediction']} ground-truth video(s) without a prediction "
        f"(scored as empty), {results['warnings']['prediction_without_gt']} predicted video(s) absent from the "
        "ground truth (not scored)",
        "",
        "## Overall (0-100; FPE per video)",
        "",
        _table(["system"] + [name for _, name in _MAIN_COLUMNS],
               [[system or "this run"] + [overall[key] for key, _ in _MAIN_COLUMNS]]),
        "",
        "Fsc (per-entity mean) is the default; Fsc (of means) is the harmonic mean of the mean Cap and "
        "mean IoU. The paper's tables mix both aggregations. Embed-cos is an offline wording score, not Cap.",
        "",
    ]
    out += ["## Published baselines (published figures, not re-run here)", ""]
    if baselines is None or not baselines.rows:
        out += ["No published rows are shipped: none could be checked against the paper yet "
                "(see bench/baselines.json).", ""]
    else:
        out += [
            _table(["table", "method", "dataset", "role", "Cap", "IoU", "Fsc", "FPE"],
                   [[r.table, r.method, r.dataset, r.role, r.cap, r.iou, r.fsc, r.fpe] for r in baselines.rows]),
            "",
            f"Source: {baselines.source}",
            "",
        ]
    keys = ("gt_entities", "matches", "iou", "cap", "fsc_per_entity", "fsc_of_means", "fpe")
    for name, title in (("role", "Per role (paper's Table 4)"), ("dataset", "Per dataset"),
                        ("anomaly_class", "Per anomaly class"), ("location", "Per location")):
        groups = results["breakdowns"][name]
        out += [f"## {title}", "", _table([name, *keys], [[g] + [s.get(k) for k in keys] for g, s in groups.items()]),
                ""]
    out += [
        "## Direction and alerts",
        "",
        _table(
            ["direction accuracy (l/c/r)", "clock hour ±1", "time-to-alert median (s)", "mean (s)",
             "alert precision", "alert recall", "false alerts"],
            [[overall["direction_accuracy"], overall["clock_accuracy_pm1"], overall["time_to_alert_median_s"],
              overall["time_to_alert_mean_s"], overall["alert_precision"], overall["alert_recall"],
              overall["false_alerts"]]],
        ),
        "",
        f"Direction over {overall['direction_videos']} video(s), clock over {overall['clock_videos']}, "
        f"time-to-alert over {overall['time_to_alert_videos']} (first correct alert minus anomaly onset).",
        "",
        "## Plots",
        "",
    ]
    out += [f"![{p}]({p})" for p in plots]
    return "\n".join(out) + "\n"


def write_report(
    out_dir: str | Path,
    videos: Sequence[VideoScore],
    settings: ScoreSettings,
    warnings: Warnings,
    *,
    baselines: Baselines | None = None,
    system: str | None = None,
) -> dict:
    out_dir = Path(out_dir)
    results = build_results(videos, settings, warnings)
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out_dir / "per_entity.csv", _per_entity_csv(videos))
    plots = _plots(out_dir, videos, results)
    atomic_write_text(out_dir / "report.md", _markdown(results, baselines, plots, system))
    return results
