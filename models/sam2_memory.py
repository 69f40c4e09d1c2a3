"""SAM2's memory bank, kept on the host and bounded.

The selection rules mirror `SAM2Base._prepare_memory_conditioned_features` (sam2 1.1.0) for
forward tracking: every selected conditioning (prompted) frame at temporal position 0, then the
`num_maskmem - 1` most recent non-conditioning frames (stride r), and object pointers from the
conditioning frames in the past plus up to `max_ptrs - 1` recent frames, each with its signed
frame distance. Everything older than the furthest frame those rules can reach is dropped, so the
bank's size does not grow with the stream. Memory features are stored as bfloat16 bit patterns,
as SAM2's video predictor stores them (it casts them to bfloat16), which halves the memory and
keeps the numbers identical to the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even like torch's cast."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


@dataclass
class FrameMemory:
    """What one frame leaves in an object's bank."""

    pointer: np.ndarray  # [C] object pointer
    features: np.ndarray | None  # [Cm, h, w] bfloat16 bits; None once too old to be a spatial memory
    mask_logits: np.ndarray | None = None  # [4h, 4w] kept on prompted frames only (for corrections)


@dataclass(frozen=True)
class BankRules:
    num_maskmem: int = 7
    max_obj_ptrs: int = 16
    max_cond_frames_in_attn: int = -1
    stride: int = 1
    only_past_pointers: bool = True
    signed_pointer_distance: bool = True
    max_cond_frames_kept: int | None = None  # beyond SAM2: cap prompted frames for endless streams
    # Beyond SAM2, for slow devices: a smaller memory-attention input. The most recent memories and
    # pointers are kept (prompted frames first); temporal encodings keep SAM2's meaning.
    max_memories_used: int | None = None
    max_pointers_used: int | None = None

    @property
    def spatial_horizon(self) -> int:
        """How many frames back a non-conditioning spatial memory can still be selected."""
        return max(1, ((self.num_maskmem - 2) * self.stride) + self.stride + 1)

    @property
    def pointer_horizon(self) -> int:
        return self.max_obj_ptrs - 1


@dataclass
class Selection:
    """The bank's answer for one frame: what memory attention reads."""

    features: list[np.ndarray]  # each [Cm, h, w] float32
    tpos_index: list[int]  # SAM2's maskmem_tpos_enc index per spatial memory
    pointers: list[np.ndarray]  # each [C]
    pointer_distance: list[int]  # signed frame distance per pointer

    @property
    def signature(self) -> tuple:
        """Objects with equal signatures can share one batched memory-attention call."""
        return tuple(self.tpos_index), tuple(self.pointer_distance)


@dataclass
class MemoryBank:
    """One object's memories: prompted frames and a bounded window of recent frames."""

    rules: BankRules
    cond: dict[int, FrameMemory] = field(default_factory=dict)
    recent: dict[int, FrameMemory] = field(default_factory=dict)

    def add(self, frame_index: int, memory: FrameMemory, conditioning: bool) -> None:
        if conditioning:
            self.recent.pop(frame_index, None)
            self.cond[frame_index] = memory
            cap = self.rules.max_cond_frames_kept
            while cap is not None and len(self.cond) > cap:
                self.cond.pop(min(self.cond))
        else:
            self.recent[frame_index] = memory

    def prune(self, current: int) -> None:
        """Drop what no future frame (> current) can select."""
        rules = self.rules
        for t in [
            t for t in self.recent if t < current + 1 - max(rules.spatial_horizon, rules.pointer_horizon)
        ]:
            del self.recent[t]
        for t, memory in self.recent.items():
            if t < current + 1 - rules.spatial_horizon:
                memory.features = None

    def _split_cond(self, frame_index: int) -> tuple[dict[int, FrameMemory], dict[int, FrameMemory]]:
        """sam2's `select_closest_cond_frames`."""
        limit = self.rules.max_cond_frames_in_attn
        if limit == -1 or len(self.cond) <= limit:
            return dict(self.cond), {}
        selected: dict[int, FrameMemory] = {}
        before = max((t for t in self.cond if t < frame_index), default=None)
        if before is not None:
            selected[before] = self.cond[before]
        after = min((t for t in self.cond if t >= frame_index), default=None)
        if after is not None:
            selected[after] = self.cond[after]
        remaining = sorted((t for t in self.cond if t not in selected), key=lambda t: abs(t - frame_index))
        for t in remaining[: limit - len(selected)]:
            selected[t] = self.cond[t]
        return selected, {t: m for t, m in self.cond.items() if t not in selected}

    def select(self, frame_index: int, num_frames: int | None = None) -> Selection:
        rules = self.rules
        selected, unselected = self._split_cond(frame_index)
        spatial: list[tuple[int, FrameMemory]] = [(0, m) for m in selected.values()]
        for t_pos in range(1, rules.num_maskmem):
            t_rel = rules.num_maskmem - t_pos
            if t_rel == 1:
                previous = frame_index - 1
            else:
                previous = ((frame_index - 2) // rules.stride) * rules.stride - (t_rel - 2) * rules.stride
            memory = self.recent.get(previous, unselected.get(previous))
            if memory is not None and memory.features is not None:
                spatial.append((t_pos, memory))

        max_ptrs = rules.max_obj_ptrs if num_frames is None else min(num_frames, rules.max_obj_ptrs)
        pointers: list[tuple[int, np.ndarray]] = []
        for t, memory in selected.items():
            if rules.only_past_pointers and t > frame_index:
                continue
            distance = frame_index - t if rules.signed_pointer_distance else abs(frame_index - t)
            pointers.append((distance, memory.pointer))
        for t_diff in range(1, max_ptrs):
            t = frame_index - t_diff
            if t < 0:
                break
            memory = self.recent.get(t, unselected.get(t))
            if memory is not None:
                pointers.append((t_diff, memory.pointer))
        if rules.max_memories_used is not None and len(spatial) > rules.max_memories_used:
            conds = [item for item in spatial if item[0] == 0][: rules.max_memories_used]
            recents = [item for item in spatial if item[0] != 0]
            spatial = conds + recents[len(recents) - (rules.max_memories_used - len(conds)) :]
        if rules.max_pointers_used is not None:
            pointers = pointers[: rules.max_pointers_used]
        return Selection(
            features=[from_bfloat16_bits(m.features) for _, m in spatial],
            tpos_index=[rules.num_maskmem - t_pos - 1 for t_pos, _ in spatial],
            pointers=[p for _, p in pointers],
            pointer_distance=[d for d, _ in pointers],
        )

    def size_bytes(self) -> int:
        total = 0
        for memory in (*self.cond.values(), *self.recent.values()):
            total += memory.pointer.nbytes
            total += 0 if memory.features is None else memory.features.nbytes
            total += 0 if memory.mask_logits is None else memory.mask_logits.nbytes
        return total
