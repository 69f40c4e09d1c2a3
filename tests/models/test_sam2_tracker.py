"""The ONNX Sam2Tracker against torch's SAM2VideoPredictor, its memory bank rules, and its API."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vigil360 import masks as rle
from vigil360.errors import UserError
from vigil360.models.sam2_memory import (
    BankRules,
    FrameMemory,
    MemoryBank,
    from_bfloat16_bits,
    to_bfloat16_bits,
)
from vigil360.models.sam2_tracker import Sam2Tracker, fill_holes, preprocess

IMAGE_SIZE = 128
LOGIT_BOUND = 1e-3  # max |onnx - torch| on mask logits, every frame, every object
IOU_BOUND = 0.99
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="session")
def sam2_export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vigil360.export.sam2_cached import ensure_export

    out = tmp_path_factory.getbasetemp() / f"sam2_tiny_{IMAGE_SIZE}"  # shared with tests/export
    torch.set_num_threads(2)
    ensure_export(out, image_size=IMAGE_SIZE, seed=0)
    return out


@pytest.fixture(scope="module")
def clip():
    """12 frames of the synthetic generator (RGB) and two boxes on frame 0: the GT entity and a patch."""
    from vigil360.bench.synthetic.render import render
    from vigil360.bench.synthetic.spec import ScenarioSpec

    rendered = render(
        ScenarioSpec(kind="stealing", seed=1, width=512, height=256, fps=12, duration_s=1.0, noise_sigma=0)
    )
    frames = [np.ascontiguousarray(f[..., ::-1]) for f in rendered.frames]
    ys, xs = np.nonzero(rle.decode(rendered.truth.entities[0].masks[0]))
    boxes = {
        1: [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
        2: [300.0, 100.0, 380.0, 200.0],
    }
    assert len(frames) == 12
    return frames, boxes


def _parity_with_sam2_loader(export_dir: Path, frames: list, boxes: dict, folder: Path) -> tuple[float, float]:
    """Worst |logit| gap and worst mask IoU between our tracker and sam2's SAM2VideoPredictor, which
    reads the same JPEG folder with its OWN frame loader (resize and normalisation included)."""
    from PIL import Image

    from vigil360.export.sam2_model import build_model

    folder.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{index:05d}.jpg"), frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    # The pixels sam2's loader decodes (PIL), so the only difference left is what each side does with them.
    decoded = [np.asarray(Image.open(folder / f"{i:05d}.jpg").convert("RGB")) for i in range(len(frames))]
    # The CPU torch reference cannot fill holes (sam2's CUDA extension), so neither do we here.
    tracker = Sam2Tracker(export_dir, providers="cpu", num_frames=len(frames), fill_hole_area=0)
    for obj_id, box in boxes.items():
        assert tracker.add_object(obj_id, 0, box_xyxy=box) is None  # queued until frame 0 arrives
    ours = [tracker.step(frame, index) for index, frame in enumerate(decoded)]

    sam = build_model("sam2.1_hiera_tiny", IMAGE_SIZE, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = sam.init_state(str(folder))
        for obj_id, box in boxes.items():
            sam.add_new_points_or_box(state, 0, obj_id, box=np.asarray(box, np.float32))
        reference = {index: (ids, video.numpy()) for index, ids, video in sam.propagate_in_video(state)}

    worst_logit, worst_iou = 0.0, 1.0
    for index in range(len(frames)):
        ids, video = reference[index]
        for k, obj_id in enumerate(ids):
            store = "cond_frame_outputs" if index == 0 else "non_cond_frame_outputs"
            low = state["output_dict_per_obj"][k][store][index]["pred_masks"][0, 0].numpy()
            got = ours[index][obj_id]
            worst_logit = max(worst_logit, float(np.abs(got.logits - low).max()))
            expected = video[k, 0] > 0
            union = (got.mask | expected).sum()
            iou = 1.0 if union == 0 else (got.mask & expected).sum() / union
            worst_iou = min(worst_iou, float(iou))
            assert got.mask.shape == frames[0].shape[:2]
    return worst_logit, worst_iou


@pytest.mark.slow
def test_onnx_tracker_reproduces_torch_video_predictor(sam2_export_dir: Path, clip, tmp_path: Path) -> None:
    frames, boxes = clip
    worst_logit, worst_iou = _parity_with_sam2_loader(sam2_export_dir, frames, boxes, tmp_path / "frames")
    assert worst_logit <= LOGIT_BOUND, worst_logit
    assert worst_iou >= IOU_BOUND, worst_iou


@pytest.mark.slow
def test_tracker_matches_sam2_on_a_real_video_read_by_sam2s_own_loader(sam2_export_dir: Path, tmp_path: Path):
    """Real pedestrians (OpenCV's vtest.avi), 768 x 576 shrunk to the model's input: the resize filter
    matters here (OpenCV's area filter vs sam2's PIL bicubic), unlike on flat synthetic colours."""
    from real_video import vtest_frames

    frames = vtest_frames(8, step=3)
    # Two boxes over the walkway (people and paving); parity does not depend on what they hold.
    boxes = {1: [90.0, 150.0, 200.0, 400.0], 2: [400.0, 180.0, 560.0, 470.0]}
    worst_logit, worst_iou = _parity_with_sam2_loader(sam2_export_dir, frames, boxes, tmp_path / "frames")
    assert worst_logit <= LOGIT_BOUND, worst_logit
    assert worst_iou >= IOU_BOUND, worst_iou


def test_bfloat16_bits_round_like_torch() -> None:
    values = np.random.default_rng(0).standard_normal(10_000).astype(np.float32) * 50
    values[:3] = [0.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8]  # exact ties round to even
    expected = torch.from_numpy(values).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(from_bfloat16_bits(to_bfloat16_bits(values)), expected)


def _memory(value: float) -> FrameMemory:
    return FrameMemory(
        pointer=np.full(4, value, np.float32), features=to_bfloat16_bits(np.full((2, 2, 2), value))
    )


def test_bank_selects_like_sam2_and_stays_bounded() -> None:
    bank = MemoryBank(BankRules())
    bank.add(0, _memory(0), conditioning=True)
    for t in range(1, 40):
        selection = bank.select(t)
        if t == 20:
            # cond frame at temporal slot 0 (tpos index 6), then frames 14..19 oldest first (indices 5..0)
            assert selection.tpos_index == [6, 5, 4, 3, 2, 1, 0]
            assert [float(f.flat[0]) for f in selection.features] == [0, 14, 15, 16, 17, 18, 19]
            # pointers: the cond frame at distance 20, then the 15 most recent frames
            assert selection.pointer_distance == [20, *range(1, 16)]
        bank.add(t, _memory(t), conditioning=False)
        bank.prune(t)
        if t == 5:
            # frame 6: frames 1..5 exist (frame 0 is a cond frame, already in slot 0)
            assert bank.select(6).tpos_index == [6, 4, 3, 2, 1, 0]
    assert len(bank.recent) <= 16 and sum(m.features is not None for m in bank.recent.values()) <= 7
    sizes = []
    for t in range(40, 80):
        bank.add(t, _memory(t), conditioning=False)
        bank.prune(t)
        sizes.append(bank.size_bytes())
    assert len(set(sizes)) == 1  # flat: memory does not grow with stream length


def test_lean_bank_keeps_prompted_and_most_recent() -> None:
    bank = MemoryBank(BankRules(max_memories_used=3, max_pointers_used=4))
    bank.add(0, _memory(0), conditioning=True)
    for t in range(1, 20):
        bank.add(t, _memory(t), conditioning=False)
    selection = bank.select(20)
    assert [float(f.flat[0]) for f in selection.features] == [0, 18, 19]
    assert selection.tpos_index == [6, 1, 0] and selection.pointer_distance == [20, 1, 2, 3]


def test_bank_caps_pointer_window_to_clip_length() -> None:
    bank = MemoryBank(BankRules())
    bank.add(0, _memory(0), conditioning=True)
    for t in range(1, 12):
        bank.add(t, _memory(t), conditioning=False)
    assert bank.select(12, num_frames=12).pointer_distance == [12, *range(1, 12)]


def test_fill_holes_fills_only_small_background_islands() -> None:
    logits = np.full((20, 20), 5.0, np.float32)
    logits[2:4, 2:4] = -3.0  # 4-pixel hole
    logits[10:20, 10:20] = -3.0  # big background region
    filled = fill_holes(logits, max_area=8)
    assert np.all(filled[2:4, 2:4] == np.float32(0.1)) and np.all(filled[10:20, 10:20] == -3.0)


def test_preprocess_accepts_bgr_and_refuses_bad_frames() -> None:
    frame = np.zeros((10, 20, 3), np.uint8)
    frame[..., 0] = 255
    rgb = preprocess(frame, 64, MEAN, STD, "rgb")
    bgr = preprocess(frame, 64, MEAN, STD, "bgr")
    assert rgb.shape == (1, 3, 64, 64) and rgb[0, 0, 0, 0] > 0 and bgr[0, 2, 0, 0] > 0
    with pytest.raises(UserError, match="uint8"):
        preprocess(np.zeros((10, 20), np.float32), 64, MEAN, STD)


@pytest.mark.slow
def test_tracker_api(sam2_export_dir: Path, clip) -> None:
    frames, boxes = clip
    tracker = Sam2Tracker(sam2_export_dir, providers="cpu", threads=2)
    with pytest.raises(UserError, match="box or points"):
        tracker.add_object(1, 0)
    first = tracker.add_object(1, 0, box_xyxy=boxes[1], frame=frames[0])
    assert first is not None and first.mask.shape == (256, 512) and first.pointer.shape == (256,)
    assert set(tracker.step(frames[1], 1)) == {1}
    with pytest.raises(UserError, match="move forward"):
        tracker.step(frames[1], 1)
    # A point prompt for a frame not seen yet waits for it; then both objects come back.
    assert tracker.add_object("b", 2, points=[[340, 150]], labels=[1]) is None
    out = tracker.step(frames[2], 2)
    assert set(out) == {1, "b"} and all(isinstance(r.score, float) for r in out.values())
    tracker.remove_object(1)
    assert set(tracker.step(frames[3], 3)) == {"b"}
    with pytest.raises(UserError, match="no tracked object"):
        tracker.remove_object(1)
    tracker.reset()
    assert tracker.object_ids == [] and tracker.step(frames[4], 4) == {}


@pytest.mark.slow
def test_tracker_memory_is_flat_after_the_window_fills(sam2_export_dir: Path, clip) -> None:
    frames, boxes = clip
    tracker = Sam2Tracker(sam2_export_dir, providers="cpu", threads=2, verify_files=False)
    tracker.add_object(1, 0, box_xyxy=boxes[1])
    sizes = []
    for index in range(19):
        tracker.step(frames[index % len(frames)], index)
        sizes.append(tracker.memory_bytes())
    assert len(set(sizes[15:])) == 1 and sizes[-1] > 0


@pytest.mark.slow
def test_tracker_refuses_to_pick_among_engine_precisions(sam2_export_dir: Path, tmp_path: Path) -> None:
    import shutil

    from vigil360.models.manifest import GraphFile, load_manifest, write_manifest

    folder = tmp_path / "mixed"
    shutil.copytree(sam2_export_dir, folder)
    manifest = load_manifest(folder, kind="sam2", verify=False)
    engines = [
        GraphFile(role=g.role, path=f"{g.role}.{p}.engine", format="engine", sha256="0" * 64, size_bytes=1,
                  metadata={"precision": p})
        for p in ("fp32", "fp16") for g in manifest.files if g.format == "onnx"
    ]
    for engine in engines:
        (folder / engine.path).write_bytes(b"x")  # never deserialised: the choice fails first
    write_manifest(folder, manifest.model_copy(update={"files": [*manifest.files, *engines]}))
    with pytest.raises(UserError, match="several precisions \\(fp16, fp32\\)"):
        Sam2Tracker(folder, providers="tensorrt", verify_files=False)
    # Choosing one gets past the choice; without a GPU it then says what is missing instead of guessing.
    with pytest.raises(UserError, match="TensorRT or a CUDA GPU is missing"):
        Sam2Tracker(folder, providers="tensorrt", verify_files=False, engine_precision="fp16")
