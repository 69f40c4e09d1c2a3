"""The Cap judge against an OpenAI-compatible server on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_judge import FakeJudgeServer

from vigil360.bench.judge import PROMPT_VERSION, Judge, JudgeCache, ReplyError, cap_of, parse_reply
from vigil360.errors import UserError


@pytest.fixture
def server():
    with FakeJudgeServer(slow_s=1.0) as running:
        yield running


def _judge(url: str, tmp_path: Path, **kwargs: object) -> Judge:
    defaults = {"cache": JudgeCache(tmp_path / "cache.sqlite"), "backoff_s": 0.0, "timeout_s": 5.0}
    return Judge(url, **{**defaults, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"visual": 4, "motion": 3, "semantic": 5}', {"visual": 4, "motion": 3, "semantic": 5}),
        (
            '```json\n{"visual": 0, "motion": 0, "semantic": 1.0}\n```',
            {"visual": 0, "motion": 0, "semantic": 1},
        ),
        ("{'visual': 4, 'motion': 3, 'semantic': 5}", ReplyError),  # Video-ChatGPT's literal_eval habit
        ('{"visual": 4, "motion": 3}', ReplyError),
        ('{"visual": 6, "motion": 3, "semantic": 5}', ReplyError),
        ('{"visual": 2.5, "motion": 3, "semantic": 5}', ReplyError),
        ('{"visual": true, "motion": 3, "semantic": 5}', ReplyError),
        ("[4, 3, 5]", ReplyError),
        ('{"visual": NaN, "motion": 3, "semantic": 5}', ReplyError),  # json.loads accepts NaN
        ('{"visual": Infinity, "motion": 3, "semantic": 5}', ReplyError),
    ],
)
def test_parse_reply(content: str, expected: object) -> None:
    if expected is ReplyError:
        with pytest.raises(ReplyError):
            parse_reply(content)
    else:
        assert parse_reply(content) == expected


def test_cap_scale() -> None:
    assert cap_of({"visual": 5, "motion": 5, "semantic": 5}) == 100.0
    assert cap_of({"visual": 1, "motion": 2, "semantic": 3}) == pytest.approx(40.0)


def test_request_follows_the_api_and_the_prompt_pattern(
    server: FakeJudgeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    judge = _judge(server.url, tmp_path, model="judge-model")
    verdict = judge.score("a man in black", "a man in black")
    assert verdict.scores == {"visual": 5, "motion": 5, "semantic": 5} and verdict.cap == 100.0
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "judge-model" and body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert system["role"] == "system" and "##INSTRUCTIONS:" in system["content"]
    assert user["role"] == "user" and "Reference caption: a man in black" in user["content"]


def test_malformed_reply_is_a_bounded_failure(server: FakeJudgeServer, tmp_path: Path) -> None:
    judge = _judge(server.url, tmp_path, max_attempts=3)
    verdict = judge.score("MALFORMED ref", "pred")
    assert verdict.scores is None and verdict.cap is None
    assert "after 3 attempt" in verdict.error and "not JSON" in verdict.error
    assert len(server.requests) == 3
    # Failures are not cached: a rerun asks again.
    judge.score("MALFORMED ref", "pred")
    assert len(server.requests) == 6


def test_flaky_reply_recovers_on_retry_and_fenced_json_parses(
    server: FakeJudgeServer, tmp_path: Path
) -> None:
    judge = _judge(server.url, tmp_path)
    assert judge.score("FLAKY ref", "other").scores == {"visual": 1, "motion": 2, "semantic": 3}
    assert len(server.requests) == 2
    assert judge.score("FENCED ref", "FENCED ref").cap == 100.0


def test_timeouts_and_server_errors_are_bounded_failures(server: FakeJudgeServer, tmp_path: Path) -> None:
    judge = _judge(server.url, tmp_path, timeout_s=0.2, max_attempts=2)
    slow = judge.score("SLOW ref", "pred")
    assert slow.scores is None and "Timeout" in slow.error
    broken = judge.score("HTTP500 ref", "pred")
    assert broken.scores is None and "500" in broken.error
    assert len(server.requests) == 4


def test_cache_hits_cost_nothing_and_persist(server: FakeJudgeServer, tmp_path: Path) -> None:
    judge = _judge(server.url, tmp_path)
    first = judge.score("ref", "pred")
    again = judge.score("ref", "pred")
    assert again.cached and again.scores == first.scores and len(server.requests) == 1
    judge.cache.close()
    reopened = _judge(server.url, tmp_path)
    assert reopened.score("ref", "pred").cached
    assert len(server.requests) == 1
    other_model = _judge(server.url, tmp_path, model="another-judge")
    assert not other_model.score("ref", "pred").cached  # the key names the model
    assert len(server.requests) == 2
    assert JudgeCache.key("m", "a", "b") != JudgeCache.key("m", "a", "b", prompt_version=PROMPT_VERSION + "x")


def test_concurrency_limit(tmp_path: Path) -> None:
    with FakeJudgeServer(delay_s=0.15) as slow_server:
        judge = _judge(slow_server.url, tmp_path, concurrency=2)
        verdicts = judge.score_many([(f"ref {i}", f"ref {i}") for i in range(6)])
        assert [v.cap for v in verdicts] == [100.0] * 6
        assert slow_server.max_in_flight == 2


def test_auth_errors_stop_at_once(tmp_path: Path) -> None:
    with FakeJudgeServer() as running:
        running.reply = lambda body: (401, "bad key")  # type: ignore[method-assign]
        judge = _judge(running.url, tmp_path)
        with pytest.raises(UserError, match="HTTP 401"):
            judge.score("a", "b")
        assert len(running.requests) == 1


def test_cap_rules_per_entity(server: FakeJudgeServer, tmp_path: Path) -> None:
    """Missed -> 0; matched without a predicted caption -> 0; no reference -> no Cap; a failed reply -> no Cap."""
    from vigil360.bench.scoring.metrics import EntityScore, VideoScore, summarise
    from vigil360.bench.scoring.run import _fill_captions

    def row(name: str, matched: bool, reference: str | None, prediction: str | None) -> EntityScore:
        return EntityScore(video_id="v", dataset=None, anomaly_class=None, location=None, gt_entity_id=name,
                           role="perpetrator", iou=0.9 if matched else 0.1, matched=matched,
                           reference=reference, prediction=prediction)

    rows = [
        row("same", True, "a man in black", "a man in black"),
        row("missed", False, "a woman", None),
        row("silent", True, "a cyclist", None),
        row("unannotated", True, None, "a dog"),
        row("broken", True, "MALFORMED ref", "x"),
    ]
    video = VideoScore(video_id="v", dataset=None, anomaly_class=None, location=None, fps=30, has_prediction=True,
                       n_gt=5, n_pred=4, false_positive_roles=[], onset_frame=None, alert_frame=None,
                       correct_alert_frame=None, false_alerts=0, direction_gt=None, direction_pred=None,
                       clock_gt=None, clock_pred=None, entities=rows)
    _fill_captions([video], _judge(server.url, tmp_path, max_attempts=2), None)
    assert [(r.cap_status, r.cap) for r in rows] == [
        ("judged", 100.0), ("missed", 0.0), ("no_caption", 0.0), ("no_reference", None), ("failed", None)
    ]
    summary = summarise(rows, [video])
    assert summary["cap"] == pytest.approx(100 / 3)
    assert summary["cap_failed"] == 1 and summary["cap_no_reference"] == 1
