"""Cap: an LLM judge scores a generated entity caption against the reference caption.

The prompt follows Video-ChatGPT's evaluation pattern (a system message giving the judge its
role and ##INSTRUCTIONS bullets; a user message with the reference and the prediction; the
reply as JSON), with its pitfalls avoided: the example reply is valid JSON, the reply is
parsed with `json.loads` and checked, and retries are bounded - a reply that never parses is
recorded as a failure, never as a zero and never as an endless loop.

Any OpenAI-compatible endpoint works (OpenAI, a local vLLM or Ollama server). Results are
cached in SQLite keyed by sha256 of (judge model, prompt version, reference, prediction), so a
rerun costs nothing; every result names the model and the prompt version.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from vigil360.errors import UserError

PROMPT_VERSION = "vigil360-cap-v1"
CRITERIA = ("visual", "motion", "semantic")
DEFAULT_MODEL = "gpt-4o-mini"

SYSTEM_PROMPT = (
    "You are an intelligent chatbot designed for evaluating the quality of captions that describe one "
    "entity (a person or an object) involved in an anomalous event in a video. You compare a predicted "
    "caption with a reference caption written by an annotator. Here's how you can accomplish the task:\n"
    "------\n"
    "##INSTRUCTIONS:\n"
    "- Score visual features: does the prediction describe the entity's appearance (clothing, colours, "
    "build, object type) as the reference does?\n"
    "- Score motion features: does the prediction describe what the entity does (actions, direction, "
    "interaction with others) as the reference does?\n"
    "- Score semantic equivalence: does the prediction mean the same thing as the reference overall, "
    "allowing paraphrases and synonyms?\n"
    "- Details the reference does not mention are neither rewarded nor punished unless they contradict it.\n"
    "- Each score is an integer from 0 (wrong or missing) to 5 (fully consistent)."
)

USER_TEMPLATE = (
    "Please evaluate the following caption pair:\n\n"
    "Reference caption: {reference}\n"
    "Predicted caption: {prediction}\n\n"
    "Provide your evaluation only as a JSON object with three integer scores from 0 to 5, for example "
    '{{"visual": 3, "motion": 4, "semantic": 3}}. '
    "Do not write any other text or explanation."
)


def build_messages(reference: str, prediction: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": USER_TEMPLATE.format(reference=reference, prediction=prediction)},
    ]


class ReplyError(ValueError):
    """A judge reply that is not the JSON object asked for."""


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_reply(content: str) -> dict[str, int]:
    """The three integer scores of a reply; anything else is a ReplyError (retried, then a failure)."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReplyError(f"reply is not JSON ({error.msg}): {content[:80]!r}") from None
    if not isinstance(data, dict):
        raise ReplyError(f"reply is not a JSON object: {content[:80]!r}")
    scores = {}
    for name in CRITERIA:
        value = data.get(name)
        if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
                or value != int(value)):
            raise ReplyError(f"reply has no integer {name!r} score: {content[:80]!r}")
        if not 0 <= value <= 5:
            raise ReplyError(f"{name} score {value} is outside 0-5")
        scores[name] = int(value)
    return scores


def cap_of(scores: dict[str, int]) -> float:
    """Mean of the three criteria scaled to 0-100."""
    return sum(scores[c] for c in CRITERIA) / len(CRITERIA) / 5.0 * 100.0


@dataclass(frozen=True)
class Verdict:
    scores: dict[str, int] | None
    error: str | None = None
    cached: bool = False

    @property
    def cap(self) -> float | None:
        return cap_of(self.scores) if self.scores is not None else None


class JudgeCache:
    """SQLite store of successful verdicts. Failures are not stored: a scoring run started again
    with `--restart` asks the judge again only for them (every success is a cache hit); a plain
    resume keeps the videos already scored, their failures included, as reported."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, model TEXT, prompt_version TEXT, "
            "scores TEXT, created REAL)"
        )
        self._db.commit()

    @staticmethod
    def key(model: str, reference: str, prediction: str, prompt_version: str = PROMPT_VERSION) -> str:
        payload = json.dumps([model, prompt_version, reference, prediction], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict[str, int] | None:
        with self._lock:
            row = self._db.execute("SELECT scores FROM verdicts WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, scores: dict[str, int]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)",
                (key, model, PROMPT_VERSION, json.dumps(scores), time.time()),
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Judge:
    """Client of an OpenAI-compatible chat endpoint (`base_url` ends in /v1)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str = DEFAULT_MODEL,
        cache: JudgeCache | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        max_attempts: int = 3,
        concurrency: int = 8,
        backoff_s: float = 1.0,
    ) -> None:
        if max_attempts < 1 or concurrency < 1:
            raise UserError("judge max_attempts and concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.prompt_version = PROMPT_VERSION
        self.cache = cache
        self.max_attempts = max_attempts
        self.concurrency = concurrency
        self.backoff_s = backoff_s
        key = os.environ.get(api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    def _ask(self, reference: str, prediction: str) -> dict[str, int]:
        response = self._client.post(
            "/chat/completions",
            json={
                "model": self.model,
                "messages": build_messages(reference, prediction),
                "temperature": 0,
                "response_format": {"type": "json_object"},
            },
        )
        if response.status_code in (401, 403, 404):
            # Not transient: retrying would only repeat it for every pair.
            raise UserError(
                f"judge at {self.base_url} answered HTTP {response.status_code} for model {self.model!r}: "
                f"{response.text[:200]}"
            )
        response.raise_for_status()
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ReplyError(f"response is not a chat completion: {response.text[:80]!r}") from None
        return parse_reply(content or "")

    def score(self, reference: str, prediction: str) -> Verdict:
        key = JudgeCache.key(self.model, reference, prediction)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return Verdict(cached, cached=True)
        error = ""
        for attempt in range(self.max_attempts):
            try:
                scores = self._ask(reference, prediction)
            except (httpx.TransportError, httpx.HTTPStatusError, ReplyError) as problem:
                error = f"{type(problem).__name__}: {problem}"
                if attempt + 1 < self.max_attempts:
                    time.sleep(self.backoff_s * 2**attempt)
                continue
            if self.cache is not None:
                self.cache.put(key, self.model, scores)
            return Verdict(scores)
        return Verdict(None, error=f"no valid reply after {self.max_attempts} attempt(s); last: {error}")

    def score_many(self, pairs: Sequence[tuple[str, str]], progress: bool = False) -> list[Verdict]:
        """Score (reference, prediction) pairs with at most `concurrency` requests in flight."""
        if not pairs:
            return []
        from tqdm import tqdm

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = pool.map(lambda pair: self.score(*pair), pairs)
            return list(tqdm(results, total=len(pairs), desc="judge", unit="pair", disable=not progress, leave=False))

    def close(self) -> None:
        self._client.close()
