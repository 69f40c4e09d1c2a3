"""The two prompts of the paper's pipeline, as plain text any backend can render.

Grounding asks for JSON boxes in coordinates normalised to 0..1000 of each image (how
SmolVLM/Qwen-style models are commonly prompted); the example reply is itself valid JSON, so a
model that copies its shape produces something parseable. Captioning follows the paper's split
into appearance and motion, and forbids remarks on identity, age, race and looks (the parser
removes any that slip through).
"""

from __future__ import annotations

from vigil360.models.vlm.interfaces import VlmRequest

BOX_SCALE = 1000

GROUNDING_SYSTEM = (
    "You help a blind pedestrian who wears a 360-degree camera understand unusual events around them. "
    "You look at camera views and find the people and objects involved in the event."
)

_GROUNDING_TASK = """{views} Scene context: {context}

Find the entities involved in the unusual event. Roles:
- perpetrator: who causes it (e.g. the one who grabs, throws, threatens, collides)
- victim: a person it is done to
- target: an object it is done to (a bag, a phone, a bicycle)
- related: another entity that takes part
Answer with a JSON list only, one object per entity, boxes as [x1, y1, x2, y2] in 0..{scale} of the image{view_rule}:
{example}
Use an empty list [] if nothing unusual is visible."""

CAPTION_SYSTEM = (
    "You describe one highlighted person or object for a blind pedestrian. Describe clothing, carried "
    "objects and actions only. Never mention identity, age, race, skin, body shape or attractiveness."
)

_CAPTION_TASK = """These frames follow one instance, outlined and with the rest of the scene dimmed.
What happens in the whole video: {context}

Describe only the outlined instance. Answer with one JSON object only:
{{"appearance": "what it wears or looks like as an object, and what it carries",
 "motion": "what it does, in the present tense"}}"""


def grounding_request(num_views: int, context: str, max_new_tokens: int = 160) -> VlmRequest:
    """A request without images (the caller adds them) - kept separate so tests can read the text."""
    if num_views == 1:
        views, view_rule = "One camera view.", ""
        example = '[{"role": "perpetrator", "label": "person", "box": [120, 200, 380, 990], "confidence": 0.8}]'
    else:
        views = f"{num_views} camera views, numbered 1 to {num_views} in the order shown."
        view_rule = ', and "view" the number of the image it is in'
        example = ('[{"role": "perpetrator", "label": "person", "view": 1, "box": [120, 200, 380, 990], '
                   '"confidence": 0.8}]')
    user = _GROUNDING_TASK.format(views=views, context=_one_line(context) or "none given", scale=BOX_SCALE,
                                  view_rule=view_rule, example=example)
    return VlmRequest(images=[], system=GROUNDING_SYSTEM, user=user, max_new_tokens=max_new_tokens)


def caption_request(context: str, max_new_tokens: int = 96) -> VlmRequest:
    user = _CAPTION_TASK.format(context=_one_line(context) or "none given")
    return VlmRequest(images=[], system=CAPTION_SYSTEM, user=user, max_new_tokens=max_new_tokens)


def chat_messages(request: VlmRequest, image_parts: list[dict]) -> list[dict]:
    """OpenAI/HF chat structure: system text, then one user turn with the images before the text."""
    messages = []
    if request.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": request.system}]})
    messages.append({"role": "user", "content": [*image_parts, {"type": "text", "text": request.user}]})
    return messages


def _one_line(text: str) -> str:
    return " ".join(text.split())
