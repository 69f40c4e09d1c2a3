"""A streaming SAM2 video tracker on the exported graphs (onnxruntime or native TensorRT engines).

Frames arrive one at a time (no whole-video preload). Per frame: one image-encoder call shared by
all objects; memory attention, mask decoder and memory encoder are batched over objects whose
memory layout matches (objects prompted on the same frame always do). The memory bank follows
SAM2's rules (see `sam2_memory`) and is bounded. Host-side decisions mirror sam2 1.1.0's
`SAM2VideoPredictor`: multimask choice on a single click or while tracking, the stability rule
on a box, the no-object score, binarised masks for prompted frames' memories, hole filling.

Input frames are RGB uint8 H x W x 3 unless the tracker is built with `color="bgr"` (OpenCV).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from vigil360.errors import UserError
from vigil360.models.manifest import Manifest, load_manifest
from vigil360.models.sam2_memory import BankRules, FrameMemory, MemoryBank, to_bfloat16_bits

NO_OBJ_SCORE = -1024.0
ROLES = ("image_encoder", "mask_decoder", "memory_attention", "memory_encoder")


@dataclass
class ObjectResult:
    """One object on one frame."""

    mask: np.ndarray  # bool, H x W of the input frame
    logits: np.ndarray  # float32 [4h, 4w] low-res mask logits (SAM2's `pred_masks`)
    score: float  # object-score logit: > 0 means the object is judged present
    pointer: np.ndarray  # float32 [C] object pointer
    iou: float  # the decoder's IoU estimate for the kept mask

    @property
    def present(self) -> bool:
        return self.score > 0


@dataclass
class _Prompt:
    coords: np.ndarray  # [N, 2] in frame pixels
    labels: np.ndarray  # [N] int32


@dataclass
class _Object:
    bank: MemoryBank
    pending: dict[int, _Prompt] = field(default_factory=dict)


class OnnxGraph:
    """One exported graph behind onnxruntime."""

    def __init__(self, path: Path, providers: str, threads: int | None) -> None:
        from vigil360.models.runtime import create_session

        self.session = create_session(path, providers=providers, threads=threads)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        from vigil360.models.runtime import run_options

        outputs = self.session.run(self.output_names, feeds, run_options())
        return dict(zip(self.output_names, outputs, strict=True))


def preprocess(
    frame: np.ndarray,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    color: Literal["rgb", "bgr"] = "rgb",
) -> np.ndarray:
    """H x W x 3 uint8 -> [1, 3, S, S] float32, resized and normalised exactly as SAM2's video loader.

    sam2's `load_video_frames` resizes the uint8 RGB frame with PIL's bicubic filter, divides by 255
    in float64 and normalises in float32; any other resize (OpenCV's area filter shifted mask logits
    by up to 3e-2 at 512 px) makes the tracker a different model from the one it was exported from.
    """
    from PIL import Image

    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise UserError(f"expected an H x W x 3 uint8 frame, got shape {frame.shape} dtype {frame.dtype}")
    if color == "bgr":
        frame = frame[..., ::-1]
    resized = np.asarray(
        Image.fromarray(np.ascontiguousarray(frame)).resize((image_size, image_size), Image.Resampling.BICUBIC)
    )
    image = (resized / 255.0).astype(np.float32)
    image = (image - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None])


def fill_holes(logits: np.ndarray, max_area: int) -> np.ndarray:
    """SAM2's `fill_holes_in_mask_scores`: background components of area <= max_area become 0.1."""
    import cv2

    if max_area <= 0:
        return logits
    background = (logits <= 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= max_area)
    small = small[small > 0]
    if small.size == 0:
        return logits
    hole = np.isin(labels, small) & (background > 0)
    return np.where(hole, np.float32(0.1), logits).astype(np.float32)


def stability_scores(mask_logits: np.ndarray, delta: float) -> np.ndarray:
    flat = mask_logits.reshape(mask_logits.shape[0], -1)
    area_i = (flat > delta).sum(-1).astype(np.float32)
    area_u = (flat > -delta).sum(-1).astype(np.float32)
    return np.where(area_u > 0, area_i / np.maximum(area_u, 1.0), np.float32(1.0))


class Sam2Tracker:
    """Track prompted objects through a stream of frames with SAM2's exported graphs.

    `num_frames` (optional) is only for offline clips: SAM2 caps the pointer window at the clip
    length, which changes the pointers' temporal encoding; a live stream leaves it None.
    `fill_hole_area=None` uses the exported model's setting (8 for the official video predictor).
    `max_memories` / `max_pointers` (None: SAM2's 7 and 16) shrink memory attention's input on slow
    devices, keeping prompted frames and the most recent frames; this departs from SAM2's output.
    `engine_precision` picks among TensorRT engines of several precisions in the folder (required
    then: the tracker never picks one silently).
    """

    def __init__(
        self,
        manifest_dir: str | Path,
        providers: str = "auto",
        threads: int | None = None,
        color: Literal["rgb", "bgr"] = "rgb",
        num_frames: int | None = None,
        fill_hole_area: int | None = None,
        max_cond_frames_kept: int | None = None,
        max_memories: int | None = None,
        max_pointers: int | None = None,
        verify_files: bool = True,
        engine_precision: str | None = None,
    ) -> None:
        self.folder = Path(manifest_dir)
        self.manifest: Manifest = load_manifest(self.folder, kind="sam2", verify=verify_files)
        config = self.manifest.config
        self.config = config
        self.image_size = int(self.manifest.image_size)
        self.color = color
        self.num_frames = num_frames
        self.fill_hole_area = int(
            config.get("fill_hole_area", 0) if fill_hole_area is None else fill_hole_area
        )
        if not config.get("add_tpos_enc_to_obj_ptrs", True) or not config.get(
            "directly_add_no_mem_embed", True
        ):
            raise UserError(f"{self.folder}: this model's memory options are not supported by the tracker")
        self.rules = BankRules(
            num_maskmem=int(config["num_maskmem"]),
            max_obj_ptrs=int(config["max_obj_ptrs_in_encoder"]),
            max_cond_frames_in_attn=int(config["max_cond_frames_in_attn"]),
            stride=int(config["memory_temporal_stride_for_eval"]),
            only_past_pointers=bool(config["only_obj_ptrs_in_the_past_for_eval"]),
            signed_pointer_distance=bool(config["use_signed_tpos_enc_to_obj_ptrs"]),
            max_cond_frames_kept=max_cond_frames_kept,
            max_memories_used=max_memories,
            max_pointers_used=max_pointers,
        )
        self.graphs = self._load_graphs(providers, threads, engine_precision)
        constants = np.load(self.folder / self.manifest.file("constants").path)
        self.no_mem_embed = constants["no_mem_embed"].astype(np.float32).reshape(1, -1, 1, 1)
        self.objects: dict[int | str, _Object] = {}
        self.memory_pos: np.ndarray | None = None  # [1, Cm, h, w], the same for every memory
        self._features: tuple[int, dict[str, np.ndarray], tuple[int, int]] | None = None

    def _load_graphs(self, providers: str, threads: int | None, engine_precision: str | None) -> dict:
        from vigil360.models.tensorrt_runner import EngineGraph, pick_engines, tensorrt_usable

        has_engines = any(g.format == "engine" for g in self.manifest.files)
        if has_engines and (providers == "tensorrt" or (providers == "auto" and tensorrt_usable())):
            try:
                engines = pick_engines(self.manifest.files, ROLES, engine_precision)
            except UserError as error:
                raise UserError(f"{self.folder}: {error}") from None
            if not tensorrt_usable():
                raise UserError(f"{self.folder}: TensorRT engines asked for, but TensorRT or a CUDA GPU is missing")
            return {role: EngineGraph(self.folder / engines[role].path) for role in ROLES}
        return {
            role: OnnxGraph(self.folder / self.manifest.file(role).path, providers, threads) for role in ROLES
        }

    # --- objects ---------------------------------------------------------------------------

    def add_object(
        self,
        obj_id: int | str,
        frame_index: int,
        box_xyxy: Sequence[float] | None = None,
        points: Sequence[Sequence[float]] | None = None,
        labels: Sequence[int] | None = None,
        frame: np.ndarray | None = None,
    ) -> ObjectResult | None:
        """Prompt an object with a box and/or points (frame pixels; labels 1 positive, 0 negative).

        With `frame` (or when `frame_index` is the frame just stepped) the prompt is applied now
        and its result returned; otherwise it waits for `step(frame, frame_index)`.
        """
        if box_xyxy is None and points is None:
            raise UserError(f"object {obj_id!r}: give a box or points")
        if (points is None) != (labels is None):
            raise UserError(f"object {obj_id!r}: points and labels go together")
        coords, codes = [], []
        if box_xyxy is not None:
            x0, y0, x1, y1 = (float(v) for v in box_xyxy)
            if not (x1 > x0 and y1 > y0):
                raise UserError(f"object {obj_id!r}: box {box_xyxy} is empty (need x0 < x1, y0 < y1)")
            coords += [(x0, y0), (x1, y1)]
            codes += [2, 3]
        if points is not None:
            if len(points) != len(labels) or len(points) == 0:
                raise UserError(f"object {obj_id!r}: {len(points)} points but {len(labels)} labels")
            coords += [(float(p[0]), float(p[1])) for p in points]
            codes += [int(v) for v in labels]
        prompt = _Prompt(np.asarray(coords, np.float32).reshape(-1, 2), np.asarray(codes, np.int32))
        state = self.objects.get(obj_id)
        if state is None:
            state = self.objects[obj_id] = _Object(MemoryBank(self.rules))
        if frame is not None:
            self._encode(frame, frame_index)
        if self._features is not None and self._features[0] == frame_index:
            return self._apply_prompts({obj_id: prompt}, frame_index)[obj_id]
        state.pending[frame_index] = prompt
        return None

    def remove_object(self, obj_id: int | str) -> None:
        if self.objects.pop(obj_id, None) is None:
            raise UserError(f"no tracked object {obj_id!r} (tracking: {list(self.objects)})")

    def reset(self) -> None:
        """Forget every object and memory (the graphs stay loaded)."""
        self.objects.clear()
        self._features = None

    def spawn(self) -> Sam2Tracker:
        """An empty tracker sharing this one's loaded graphs: one per independent frame stream
        (e.g. one perspective view per object on 360-degree video)."""
        twin = object.__new__(Sam2Tracker)
        twin.__dict__.update(self.__dict__)
        twin.objects = {}
        twin._features = None
        return twin

    @property
    def object_ids(self) -> list:
        return list(self.objects)

    def memory_bytes(self) -> int:
        return sum(state.bank.size_bytes() for state in self.objects.values())

    # --- frames ----------------------------------------------------------------------------

    def step(self, frame: np.ndarray, frame_index: int) -> dict[int | str, ObjectResult]:
        """Process the next frame: prompted objects get their prompt's mask, the others are tracked."""
        if self._features is not None and frame_index <= self._features[0]:
            raise UserError(f"frame {frame_index} after frame {self._features[0]}: frames must move forward")
        self._encode(frame, frame_index)
        prompts = {
            obj_id: state.pending.pop(frame_index)
            for obj_id, state in self.objects.items()
            if frame_index in state.pending
        }
        results = self._apply_prompts(prompts, frame_index) if prompts else {}
        tracked = [
            obj_id
            for obj_id, state in self.objects.items()
            if obj_id not in prompts and (state.bank.cond or state.bank.recent)
        ]
        results.update(self._track(tracked, frame_index))
        for state in self.objects.values():
            state.bank.prune(frame_index)
        return {obj_id: results[obj_id] for obj_id in self.objects if obj_id in results}

    def _encode(self, frame: np.ndarray, frame_index: int) -> None:
        if self._features is not None and self._features[0] == frame_index:
            return
        image = preprocess(
            frame, self.image_size, self.config["image_mean"], self.config["image_std"], self.color
        )
        features = self.graphs["image_encoder"](image=image)
        self._features = (frame_index, features, frame.shape[:2])

    def _apply_prompts(self, prompts: dict, frame_index: int) -> dict[int | str, ObjectResult]:
        """Initial conditioning frames: no memory, `no_mem_embed` added, one object at a time."""
        _, features, (height, width) = self._features
        embed = features["image_embed"] + self.no_mem_embed
        results = {}
        for obj_id, prompt in prompts.items():
            scale = np.asarray([self.image_size / width, self.image_size / height], np.float32)
            coords = (prompt.coords * scale)[None]
            num_points = prompt.labels.size
            multimask = bool(self.config["multimask_output_in_sam"]) and (
                int(self.config["multimask_min_pt_num"])
                <= num_points
                <= int(self.config["multimask_max_pt_num"])
            )
            decoded = self._decode(embed, coords, prompt.labels[None], multimask)
            logits = fill_holes(decoded["logits"][0], self.fill_hole_area)
            # SAM2 encodes a prompted frame's memory from its stored (hole-filled) mask, binarised.
            binarize = 1.0 if self.config["binarize_mask_from_pts_for_mem_enc"] else 0.0
            memory = self._encode_memory(
                features["image_embed"],
                logits[None, None],
                np.asarray([binarize], np.float32),
                decoded["score"][:, None],
            )
            self.objects[obj_id].bank.add(
                frame_index,
                FrameMemory(decoded["pointer"][0], memory[0], mask_logits=logits),
                conditioning=True,
            )
            results[obj_id] = self._result(logits, decoded, 0, (height, width))
        return results

    def _track(self, obj_ids: list, frame_index: int) -> dict[int | str, ObjectResult]:
        if not obj_ids:
            return {}
        _, features, frame_size = self._features
        groups: dict[tuple, list] = {}
        selections = {}
        for obj_id in obj_ids:
            selection = self.objects[obj_id].bank.select(frame_index, self.num_frames)
            selections[obj_id] = selection
            groups.setdefault(selection.signature, []).append(obj_id)
        results = {}
        for members in groups.values():
            results.update(
                self._track_group(
                    members, [selections[m] for m in members], features, frame_size, frame_index
                )
            )
        return results

    def _track_group(self, members, selections, features, frame_size, frame_index) -> dict:
        batch = len(members)
        first = selections[0]
        max_ptrs = (
            self.rules.max_obj_ptrs
            if self.num_frames is None
            else min(self.num_frames, self.rules.max_obj_ptrs)
        )
        embed = np.repeat(features["image_embed"], batch, axis=0)
        memory = np.stack([np.stack(s.features) for s in selections]).astype(np.float32)
        memory_pos = np.broadcast_to(self.memory_pos[:, None], memory.shape).astype(np.float32)
        conditioned = self.graphs["memory_attention"](
            image_embed=embed,
            image_pos=features["image_pos"],
            memory=memory,
            memory_pos=memory_pos,
            memory_tpos_index=np.asarray(first.tpos_index, np.int64),
            obj_ptrs=np.stack([np.stack(s.pointers) for s in selections]).astype(np.float32),
            obj_ptr_tpos=np.asarray(first.pointer_distance, np.float32) / np.float32(max_ptrs - 1),
        )["conditioned_embed"]
        multimask = (
            bool(self.config["multimask_output_in_sam"])
            and bool(self.config["multimask_output_for_tracking"])
            and int(self.config["multimask_min_pt_num"]) <= 0 <= int(self.config["multimask_max_pt_num"])
        )
        # No prompt while tracking: SAM2 feeds one padding point (label -1) per object.
        decoded = self._decode(
            conditioned, np.zeros((batch, 1, 2), np.float32), -np.ones((batch, 1), np.int32), multimask
        )
        memories = self._encode_memory(
            embed, decoded["logits"][:, None], np.zeros(batch, np.float32), decoded["score"][:, None]
        )
        results = {}
        for i, obj_id in enumerate(members):
            self.objects[obj_id].bank.add(
                frame_index, FrameMemory(decoded["pointer"][i], memories[i]), conditioning=False
            )
            logits = fill_holes(decoded["logits"][i], self.fill_hole_area)
            results[obj_id] = self._result(logits, decoded, i, frame_size)
        return results

    def _decode(self, embed: np.ndarray, coords: np.ndarray, labels: np.ndarray, multimask: bool) -> dict:
        """Mask decoder + SAM2's choice of mask and pointer among the four outputs."""
        _, features, _ = self._features
        batch = embed.shape[0]
        low = 4 * embed.shape[-1]
        out = self.graphs["mask_decoder"](
            image_embed=np.ascontiguousarray(embed, np.float32),
            high_res_feat0=features["high_res_feat0"],
            high_res_feat1=features["high_res_feat1"],
            point_coords=coords.astype(np.float32),
            point_labels=labels.astype(np.int32),
            mask_input=np.zeros((batch, 1, low, low), np.float32),
            has_mask_input=np.zeros(batch, np.float32),
        )
        masks, iou, pointers, score = (
            out["masks"],
            out["iou"],
            out["obj_ptrs"],
            out["object_score_logits"][:, 0],
        )
        rows = np.arange(batch)
        best_multi = 1 + np.argmax(iou[:, 1:], axis=1)
        if multimask:
            choice = best_multi
            pointer_token = (
                best_multi if self.config["use_multimask_token_for_obj_ptr"] else np.zeros(batch, int)
            )
        else:
            choice = np.zeros(batch, dtype=int)
            if self.config["dynamic_multimask_via_stability"]:
                stable = stability_scores(
                    masks[:, 0], float(self.config["dynamic_multimask_stability_delta"])
                )
                choice = np.where(
                    stable >= float(self.config["dynamic_multimask_stability_thresh"]), 0, best_multi
                )
            pointer_token = np.zeros(batch, dtype=int)
        logits = masks[rows, choice]
        if self.config["pred_obj_scores"]:
            logits = np.where((score > 0)[:, None, None], logits, np.float32(NO_OBJ_SCORE)).astype(np.float32)
        return {
            "logits": logits,
            "iou": iou[rows, choice],
            "pointer": pointers[rows, pointer_token],
            "score": score,
        }

    def _encode_memory(self, embed, mask_logits, binarize, score) -> np.ndarray:
        out = self.graphs["memory_encoder"](
            image_embed=np.ascontiguousarray(embed, np.float32),
            mask_logits=np.ascontiguousarray(mask_logits, np.float32),
            binarize=binarize,
            object_score_logits=score.astype(np.float32),
        )
        if self.memory_pos is None:
            self.memory_pos = out["memory_pos"][:1].copy()
        return to_bfloat16_bits(out["memory"])

    @staticmethod
    def _result(logits: np.ndarray, decoded: dict, i: int, frame_size: tuple[int, int]) -> ObjectResult:
        import cv2

        height, width = frame_size
        video = cv2.resize(logits, (width, height), interpolation=cv2.INTER_LINEAR)
        return ObjectResult(
            mask=video > 0,
            logits=logits,
            score=float(decoded["score"][i]),
            pointer=decoded["pointer"][i].astype(np.float32),
            iou=float(decoded["iou"][i]),
        )
