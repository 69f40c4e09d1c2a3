"""`vigil360 bench score`, `bench throughput` and `bench import-view360`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from vigil360.bench.cli import bench_app
from vigil360.errors import UserError

_SCORE_HELP = """Score predictions against ground truth (VIEW360+ metrics: IoU, Cap, Fsc, FPE, and more).

Writes report.md, results.json, per_entity.csv, per_video.jsonl and plots to OUT. Resumable:
rerun the same command after an interruption and it continues where it stopped.

Examples:

  vigil360 bench score --pred runs/pred.jsonl --gt data/gt.jsonl --judge none --out runs/score

  OPENAI_API_KEY=... vigil360 bench score --pred p.jsonl --gt g.jsonl --judge https://api.openai.com/v1

  vigil360 bench score --pred p/ --gt g/ --judge http://localhost:8000/v1 --judge-model Qwen2.5-7B-Instruct
"""


@bench_app.command("score", help=_SCORE_HELP)
def score(
    pred: Path = typer.Option(..., "--pred", help="predictions: .jsonl, .json or a folder of them"),
    gt: Path = typer.Option(..., "--gt", help="ground truth: .jsonl, .json or a folder of them"),
    judge: str = typer.Option("none", "--judge", help="OpenAI-compatible base URL (…/v1) or 'none'"),
    out: Path = typer.Option(Path("score_out"), "--out", help="output folder"),
    judge_model: str = typer.Option("gpt-4o-mini", "--judge-model", help="model name sent to the judge"),
    judge_concurrency: int = typer.Option(8, "--judge-concurrency", min=1, help="requests in flight"),
    judge_timeout: float = typer.Option(60.0, "--judge-timeout", help="seconds per request"),
    judge_attempts: int = typer.Option(3, "--judge-attempts", min=1, help="tries per pair before a failure"),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="environment variable of the key"),
    threshold: float = typer.Option(0.5, "--threshold", help="IoU for a match"),
    role_aware: bool = typer.Option(False, "--role-aware", help="assign only within role groups"),
    embed: bool | None = typer.Option(
        None, "--embed/--no-embed", help="offline MiniLM caption score (default: on when --judge none)"
    ),
    cache: Path | None = typer.Option(None, "--cache", help="judge cache (default OUT/judge_cache.sqlite)"),
    restart: bool = typer.Option(False, "--restart", help="discard earlier results in OUT"),
    system: str | None = typer.Option(None, "--system", help="name printed in the report"),
    strict: bool = typer.Option(False, "--strict", help="refuse a .jsonl file whose last line is torn "
                                                        "(default: skip it with a warning)"),
) -> None:
    _score_and_report(
        pred, gt, out, judge=judge, judge_model=judge_model, judge_concurrency=judge_concurrency,
        judge_timeout=judge_timeout, judge_attempts=judge_attempts, api_key_env=api_key_env, threshold=threshold,
        role_aware=role_aware, embed=embed, cache=cache, restart=restart, system=system, strict=strict,
    )


def _score_and_report(
    pred: Path,
    gt: Path,
    out: Path,
    *,
    judge: str = "none",
    judge_model: str = "gpt-4o-mini",
    judge_concurrency: int = 8,
    judge_timeout: float = 60.0,
    judge_attempts: int = 3,
    api_key_env: str = "OPENAI_API_KEY",
    threshold: float = 0.5,
    role_aware: bool = False,
    embed: bool | None = None,
    cache: Path | None = None,
    restart: bool = False,
    system: str | None = None,
    strict: bool = False,
) -> None:
    from vigil360.bench.baselines import load_baselines
    from vigil360.bench.caption_embed import EMBED_MODEL_NAME
    from vigil360.bench.judge import PROMPT_VERSION
    from vigil360.bench.report import write_report
    from vigil360.bench.scoring.run import ScoreSettings, score_dataset

    use_judge = judge.strip().lower() != "none"
    use_embed = (not use_judge) if embed is None else embed
    try:
        settings = ScoreSettings(
            threshold=threshold, role_aware=role_aware,
            judge_model=judge_model if use_judge else None,
            judge_prompt_version=PROMPT_VERSION if use_judge else None,
            embed_model=EMBED_MODEL_NAME if use_embed else None,
        )
    except ValueError as error:
        raise UserError(f"--threshold: {error}") from None
    client = embedder = None
    if use_embed:
        from vigil360.bench.caption_embed import CaptionEmbedder

        embedder = CaptionEmbedder()
    if use_judge:
        from vigil360.bench.judge import Judge, JudgeCache

        client = Judge(
            judge, model=judge_model, cache=JudgeCache(cache or out / "judge_cache.sqlite"),
            api_key_env=api_key_env, timeout_s=judge_timeout, max_attempts=judge_attempts,
            concurrency=judge_concurrency,
        )
    try:
        videos, warnings = score_dataset(
            pred, gt, out, settings, judge=client, embedder=embedder, restart=restart,
            progress=sys.stderr.isatty(), strict=strict,
        )
    finally:
        if client is not None:
            client.close()
            if client.cache is not None:
                client.cache.close()
    results = write_report(out, videos, settings, warnings, baselines=load_baselines(), system=system)
    overall = results["overall"]

    def show(value: float | None) -> str:
        return "–" if value is None else f"{value:.1f}"

    typer.echo(
        f"{overall['videos']} videos: IoU {show(overall['iou'])}  Cap {show(overall['cap'])}  "
        f"Fsc {show(overall['fsc_per_entity'])}  FPE {show(overall['fpe'])}  -> {out / 'report.md'}"
    )
    for name, count in (("ground-truth videos without a prediction", len(warnings.gt_without_prediction)),
                        ("predicted videos absent from the ground truth", len(warnings.prediction_without_gt))):
        if count:
            typer.echo(f"warning: {count} {name} (listed in {out / 'warnings.json'})", err=True)


@bench_app.command("throughput")
def throughput(
    videos: int = typer.Option(100, "--videos", min=1),
    entities: int = typer.Option(10, "--entities", min=1),
    frames: int = typer.Option(300, "--frames", min=1),
    width: int = typer.Option(1920, "--width"),
    height: int = typer.Option(960, "--height"),
    work: Path = typer.Option(Path("bench_throughput"), "--work", help="folder for the generated records"),
) -> None:
    """Time scoring (no judge) on synthetic RLE records; 1500 x 10 x 300 is the VIEW360+ scale."""
    from vigil360.bench.scoring.run import ScoreSettings, score_dataset
    from vigil360.bench.scoring.throughput import timed, write_dataset

    (gt_path, pred_path), write_s = timed(write_dataset, work, videos, entities, frames, width, height)
    (results, _), score_s = timed(
        score_dataset, pred_path, gt_path, work / "score", ScoreSettings(), restart=True, progress=sys.stderr.isatty()
    )
    masks = videos * entities * frames
    typer.echo(
        f"scored {len(results)} videos x {entities} entities x {frames} frames ({width}x{height}) in {score_s:.1f} s: "
        f"{len(results) / score_s:.1f} videos/s, {2 * masks / score_s / 1e3:.0f} k masks/s "
        f"(records written in {write_s:.1f} s; "
        f"{(gt_path.stat().st_size + pred_path.stat().st_size) / 2**20:.0f} MiB)"
    )


@bench_app.command("import-view360")
def import_view360(
    temporal: Path = typer.Option(..., "--temporal", help="temporal annotation file (Class_Location_NNN s e ...)"),
    out: Path = typer.Option(..., "--out", help="ground-truth .jsonl to write"),
    width: int = typer.Option(..., "--width", help="equirectangular frame width of the videos"),
    height: int = typer.Option(..., "--height", help="frame height"),
    fps: float = typer.Option(30.0, "--fps"),
    first_frame: int = typer.Option(0, "--first-frame", help="frame number the temporal file starts at"),
    prompts: Path | None = typer.Option(None, "--prompts", help="folder of <video_id>*.csv prompt files"),
    instances: Path | None = typer.Option(None, "--instances", help="folder of <video_id>.instances.json"),
    dataset: str = typer.Option("VIEW360+", "--dataset"),
    subject_role: str = typer.Option("victim", "--subject-role", help="role of subjectN ids: victim or target"),
) -> None:
    """Convert VIEW360-family annotations into ground-truth records (no masks: the files hold prompts)."""
    from vigil360.bench.importers import assemble_record, read_instances_file, read_prompt_file, read_temporal_file
    from vigil360.records import write_jsonl

    if subject_role not in ("victim", "target"):
        raise UserError(f"--subject-role must be victim or target, not {subject_role!r}")

    def one(folder: Path | None, suffix: str, video_id: str) -> Path | None:
        if folder is None:
            return None
        found = sorted(folder.glob(f"{video_id}*{suffix}"))
        return found[0] if found else None

    records = []
    for video in read_temporal_file(temporal, fps=fps, width=width, height=height, first_frame=first_frame,
                                    dataset=dataset):
        prompt_file = one(prompts, ".csv", video.video_id)
        sidecar = one(instances, ".instances.json", video.video_id)
        records.append(assemble_record(
            video,
            read_prompt_file(prompt_file, subject_role=subject_role) if prompt_file else None,  # type: ignore[arg-type]
            read_instances_file(sidecar) if sidecar else None,
            subject_role=subject_role,  # type: ignore[arg-type]
        ))
    write_jsonl(out, records)
    typer.echo(f"wrote {len(records)} ground-truth video(s) to {out}")


@bench_app.command("run")
def run_dataset(
    system: str = typer.Option("vigil360", "--system", help="the system to run (only vigil360 is built in)"),
    data: Path = typer.Option(..., "--data", help="folder of <video_id>.mp4 (+ <video_id>.gt.json)"),
    gt: Path | None = typer.Option(None, "--gt", help="ground truth, if not the .gt.json files in --data"),
    out: Path = typer.Option(Path("bench_run"), "--out", help="output folder (predictions/ and score/)"),
    settings_file: Path | None = typer.Option(None, "--settings", help="settings JSON for the loop"),
    sam2: str | None = typer.Option(None, "--sam2", help="exported SAM2 model folder"),
    vlm: str | None = typer.Option(None, "--vlm", help="VLM model folder or server URL"),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="frames per video (smoke runs)"),
    judge: str = typer.Option("none", "--judge", help="OpenAI-compatible base URL (…/v1) or 'none'"),
    judge_model: str = typer.Option("gpt-4o-mini", "--judge-model"),
    threshold: float = typer.Option(0.5, "--threshold", help="IoU for a match"),
    embed: bool | None = typer.Option(None, "--embed/--no-embed", help="offline MiniLM caption score"),
) -> None:
    """Run the loop over every video of a dataset folder, then score the predictions (both resumable)."""
    from vigil360.bench.system_run import run_system

    if system != "vigil360":
        raise UserError(f"--system {system!r}: only 'vigil360' runs here; score other systems' files with "
                        "`vigil360 bench score`")
    predictions = run_system(data, out, settings_file=settings_file, sam2=sam2, vlm=vlm, max_frames=max_frames,
                             progress=sys.stderr.isatty())
    _score_and_report(predictions, gt or data, out / "score", judge=judge, judge_model=judge_model,
                      threshold=threshold, embed=embed, system=system)
