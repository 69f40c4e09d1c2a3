"""Frame sources: 2:1 checking, damaged files, image folders, the latest-frame policy."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from vigil360.edge.source import (
    ImageFolderSource,
    LatestFrames,
    SourceError,
    VideoFileSource,
    fit_equirect,
    open_source,
)


def _write_video(path, frames, fps=15.0, fourcc="MJPG"):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _noise_frames(count, width=160, height=80, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def test_video_file_yields_all_frames_with_times(tmp_path):
    path = _write_video(tmp_path / "ok.avi", _noise_frames(12))
    source = VideoFileSource(path)
    frames = list(source.frames())
    assert [f.index for f in frames] == list(range(12))
    assert frames[3].time_s == pytest.approx(3 / 15.0)
    assert frames[0].image.shape == (80, 160, 3) and (source.width, source.height) == (160, 80)
    assert source.dropped == 0


@pytest.mark.parametrize(("fit", "expected"), [("crop", (90, 180)), ("stretch", (95, 190))])
def test_non_equirect_frames_are_refused_unless_a_fit_is_chosen(fit, expected):
    image = np.zeros((100, 180, 3), np.uint8)
    with pytest.raises(SourceError, match="not equirectangular 2:1.*--crop"):
        fit_equirect(image, "check", "clip.mp4")
    assert fit_equirect(image, fit, "clip.mp4").shape[:2] == expected


def test_non_equirect_video_is_a_clear_error(tmp_path):
    path = _write_video(tmp_path / "wide.avi", _noise_frames(3, width=160, height=120))
    with pytest.raises(SourceError, match=r"160x120, not equirectangular 2:1"):
        open_source(path)
    cropped = open_source(path, fit="crop")
    assert (cropped.width, cropped.height) == (160, 80)


def test_truncated_video_ends_with_a_clear_error_after_the_frames_it_had(tmp_path):
    path = _write_video(tmp_path / "full.avi", _noise_frames(40))
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    source = VideoFileSource(cut)
    seen = []
    with pytest.raises(SourceError, match=r"ended after \d+ of 40 frames \(truncated or corrupt\)"):
        for frame in source.frames():
            seen.append(frame.index)
    assert 5 < len(seen) < 40


def test_unreadable_video_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01 not a video" * 100)
    with pytest.raises(SourceError, match="cannot open as a video|no frame could be decoded"):
        open_source(junk)
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.mp4")


def test_image_folder_in_order_and_corrupt_image_named(tmp_path):
    for index, image in enumerate(_noise_frames(3)):
        cv2.imwrite(str(tmp_path / f"f{index:03d}.png"), image)
    source = open_source(tmp_path, fps=10.0)
    assert isinstance(source, ImageFolderSource)
    frames = list(source.frames())
    assert [f.time_s for f in frames] == pytest.approx([0.0, 0.1, 0.2])
    (tmp_path / "f003.png").write_bytes(b"broken")
    with pytest.raises(SourceError, match="f003.png: cannot decode image"):
        list(ImageFolderSource(tmp_path).frames())


def test_realtime_pacing_drops_frames_when_the_consumer_is_late(tmp_path):
    path = _write_video(tmp_path / "rt.avi", _noise_frames(30), fps=60.0)
    source = VideoFileSource(path, realtime=True)
    indices = []
    for frame in source.frames():
        indices.append(frame.index)
        time.sleep(0.05)  # a loop three frames slow
    assert source.dropped > 0
    assert len(indices) + source.dropped == 30
    assert indices == sorted(indices)


def test_latest_frame_policy_bounds_the_queue_and_counts_drops():
    produced = 0

    def camera():
        nonlocal produced
        if produced >= 200:
            return None
        produced += 1
        time.sleep(0.001)
        return np.full((4, 8, 3), produced % 255, np.uint8)

    reader = LatestFrames(camera, capacity=1)
    reader.start()
    consumed = []
    while (item := reader.get(timeout=5.0)) is not None:
        consumed.append(item[0])
        time.sleep(0.01)  # slower than the camera
    reader.stop()
    assert reader.dropped > 0, "a slow consumer must make the reader drop, not queue"
    assert len(consumed) + reader.dropped == 200
    assert consumed == sorted(consumed)
    assert threading.active_count() < 50


def test_live_reader_error_reaches_the_consumer():
    def camera():
        raise OSError("camera unplugged")

    reader = LatestFrames(camera)
    reader.start()
    with pytest.raises(OSError, match="unplugged"):
        reader.get(timeout=5.0)


class _FakeCamera:
    """What LiveSource needs from cv2.VideoCapture: a camera that delivers frames at ~500 fps."""

    def __init__(self, frames: int, width: int = 64, height: int = 32) -> None:
        self.left, self.shape = frames, (height, width, 3)
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def get(self, _prop) -> float:
        return 30.0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        time.sleep(0.002)
        return True, np.full(self.shape, self.left % 255, np.uint8)

    def release(self) -> None:
        self.released = True


def test_live_source_keeps_latency_bounded_by_dropping():
    from vigil360.edge.source import LiveSource

    camera = _FakeCamera(150)
    source = LiveSource(0, capture=camera)
    assert (source.width, source.height) == (64, 32)
    seen = []
    for frame in source.frames():
        seen.append(frame.index)
        time.sleep(0.01)  # a loop five times slower than the camera
    source.close()
    assert camera.released
    assert source.dropped > 0 and len(seen) + source.dropped == 149  # the first frame sized the source
    assert seen == sorted(seen)
