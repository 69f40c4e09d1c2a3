"""One appearance per entity, said the same way in every alert about it.

The reflex tier re-measures a track's colours every few frames, and a single measurement swings
with shading, pose and the background pixels a motion mask carries ("red trousers", then
"grey", then "black"). A listener can only tell that two alerts are about the same runner if
the description stays put, so:
- every frame's measurement is a vote (colours and label counted apart), and the alert uses the
  majority over the track's life so far, not the latest frame;
- once spoken, the phrase is kept for that entity; only the VLM's caption, when it lands,
  replaces it (a better description is worth one change).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

_UNKNOWN = "unknown"


@dataclass
class _Votes:
    upper: Counter = field(default_factory=Counter)
    lower: Counter = field(default_factory=Counter)
    label: Counter = field(default_factory=Counter)
    spoken: str | None = None  # the phrase the wearer heard, kept from then on
    caption: str | None = None  # the VLM's appearance, which outranks the votes


def _majority(votes: Counter, unknown: tuple[str, ...] = (_UNKNOWN,)) -> str:
    known = [(count, name) for name, count in votes.items() if name not in unknown]
    # Ties go to the name seen first (Counter keeps insertion order; max keeps the first maximum).
    return max(known, key=lambda pair: pair[0])[1] if known else _UNKNOWN


def compact_phrase(upper: str, lower: str, label: str, verbose: bool = False) -> str:
    """'person in red' (normal: the top's colour, the quickest cue to say and to spot) or, verbose,
    'person in a red top and blue trousers'."""
    colour = "" if upper == _UNKNOWN else upper
    if label == "person":
        if not colour:
            return "person"
        if verbose and lower not in (_UNKNOWN, upper):
            return f"person in a {upper} top and {lower} trousers"
        return f"person in {colour}"
    if label == "small object":
        return "small object"  # a colour too would push the normal form past 3 s
    return f"{colour} {'vehicle' if label == 'vehicle' else 'object'}".strip()


class AppearanceVotes:
    def __init__(self) -> None:
        self._votes: dict[str, _Votes] = {}

    def observe(self, entity_id: str, upper: str, lower: str, label: str) -> None:
        votes = self._votes.setdefault(entity_id, _Votes())
        votes.upper[upper] += 1
        votes.lower[lower] += 1
        votes.label[label] += 1

    def label(self, entity_id: str, default: str = "moving object") -> str:
        votes = self._votes.get(entity_id)
        # "moving object" is the reflex tier's "size unknown" (no distance yet): it never outvotes a size.
        label = _majority(votes.label, (_UNKNOWN, "moving object")) if votes is not None else _UNKNOWN
        return default if label == _UNKNOWN else label

    def phrase(self, entity_id: str, verbose: bool = False) -> str:
        """What the entity looks like, as the wearer hears it (not yet fixed: see `speak`)."""
        votes = self._votes.get(entity_id)
        if votes is None:
            return "moving object"
        if votes.caption:
            return votes.caption
        if votes.spoken is not None:
            return votes.spoken
        return compact_phrase(_majority(votes.upper), _majority(votes.lower), self.label(entity_id), verbose)

    def speak(self, entity_id: str, verbose: bool = False) -> str:
        """The phrase for an alert about to be said; the first one said is kept for the entity."""
        phrase = self.phrase(entity_id, verbose)
        votes = self._votes.setdefault(entity_id, _Votes())
        if votes.spoken is None and not votes.caption:
            votes.spoken = phrase
        return phrase

    def caption(self, entity_id: str, appearance: str) -> None:
        """The VLM's description replaces the measured one from the next alert on."""
        if appearance.strip():
            self._votes.setdefault(entity_id, _Votes()).caption = appearance.strip()

    def forget(self, entity_ids: set[str]) -> None:
        for entity_id in entity_ids:
            self._votes.pop(entity_id, None)

    def keep(self, entity_ids: set[str]) -> None:
        """Bounded memory on long streams: only these entities' votes are kept."""
        self._votes = {e: v for e, v in self._votes.items() if e in entity_ids}
