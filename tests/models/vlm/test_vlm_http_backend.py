"""The HTTP backend against a loopback server speaking the OpenAI chat API."""

from __future__ import annotations

import threading
import time

import pytest
from openai_loopback import LoopbackServer, Scripted, ServerState
from tiny_models import views

from vigil360.models.vlm.backends.http_backend import HttpBackend, HttpBackendError
from vigil360.models.vlm.interfaces import VlmRequest
from vigil360.models.vlm.tasks import VlmCaptioner, VlmGrounder


@pytest.fixture(scope="module")
def server(transformers_backend):
    state = ServerState(backend=transformers_backend)
    with LoopbackServer(state) as running:
        yield running


@pytest.fixture
def state(server):
    deadline = time.monotonic() + 10
    while server.state.in_flight and time.monotonic() < deadline:  # requests a timed-out client left behind
        time.sleep(0.05)
    server.state.script.clear()
    server.state.requests.clear()
    server.state.max_in_flight = 0
    return server.state


def _backend(server, **kwargs) -> HttpBackend:
    options = {"model": "tiny", "backoff_s": 0.01, "timeout_s": 20.0} | kwargs
    return HttpBackend(server.base_url, **options)


def test_grounder_and_captioner_through_http_with_the_tiny_model(server, state):
    backend = _backend(server, image_format="png")
    grounder, captioner = VlmGrounder(backend, max_new_tokens=8), VlmCaptioner(backend, max_new_tokens=8)
    result = grounder.ground(views(2), "A person grabs a bag.")
    assert result.entities or result.rejected
    assert grounder.last_generation.new_tokens == 8 or grounder.last_generation.stop == "eos"
    caption = captioner.describe(views(1), "A person grabs a bag.")
    assert caption.ok or caption.reason
    body = state.requests[0]["body"]
    parts = body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert body["max_tokens"] == 8 and body["temperature"] == 0.0 and body["messages"][0]["role"] == "system"


def test_http_answers_are_the_models_answers(server, state, transformers_backend):
    # PNG is lossless, so the server's model sees the same pixels: same text as running it locally.
    request = VlmRequest(images=views(1), system="s", user="Describe.", max_new_tokens=6)
    assert _backend(server, image_format="png").generate(request).text == transformers_backend.generate(request).text


def test_known_output_is_parsed_into_pixel_boxes(server, state):
    state.script.append(Scripted(text='```json\n[{"role": "perpetrator", "label": "person", "view": 2, '
                                      '"box": [0, 0, 500, 1000], "confidence": 0.7},]\n```'))
    result = VlmGrounder(_backend(server)).ground(views(2, size=200), "ctx")
    assert [(e.view_index, e.box_xyxy, e.role) for e in result.entities] == [(1, (0.0, 0.0, 100.0, 200.0),
                                                                             "perpetrator")]


def test_server_errors_are_retried_then_succeed(server, state):
    state.script.extend([Scripted(status=503), Scripted(status=429, headers={"Retry-After": "0"}),
                         Scripted(text='{"appearance": "grey coat", "motion": "runs"}')])
    result = VlmCaptioner(_backend(server, max_retries=2)).describe(views(1), "ctx")
    assert result.ok and result.caption.motion == "runs"
    assert len(state.requests) == 3


def test_retries_are_bounded(server, state):
    state.script.extend([Scripted(status=500)] * 3)
    with pytest.raises(HttpBackendError, match="no answer after 2 attempts.*HTTP 500"):
        _backend(server, max_retries=1).generate(VlmRequest(images=views(1), system="", user="x"))
    assert len(state.requests) == 2


def test_client_errors_are_not_retried(server, state):
    state.script.append(Scripted(status=400))
    with pytest.raises(HttpBackendError, match="refused the request.*HTTP 400"):
        _backend(server, max_retries=3).generate(VlmRequest(images=views(1), system="", user="x"))
    assert len(state.requests) == 1


def test_a_slow_server_times_out(server, state):
    state.script.extend([Scripted(delay_s=1.0, text="late")] * 2)
    start = time.perf_counter()
    with pytest.raises(HttpBackendError, match="ReadTimeout"):
        _backend(server, timeout_s=0.2, max_retries=1).generate(VlmRequest(images=views(1), system="", user="x"))
    assert time.perf_counter() - start < 1.5


def test_unreachable_server_fails_fast_with_a_clear_message():
    backend = HttpBackend("http://127.0.0.1:9/v1", model="m", max_retries=1, backoff_s=0.01)
    with pytest.raises(HttpBackendError, match="no answer after 2 attempts.*ConnectError"):
        backend.generate(VlmRequest(images=views(1), system="", user="x"))


def test_concurrency_is_capped(server, state):
    state.script.extend([Scripted(delay_s=0.3, text="{}")] * 4)
    backend = _backend(server, max_concurrency=1)
    threads = [threading.Thread(target=backend.generate, args=(VlmRequest(images=views(1), system="", user="x"),))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(state.requests) == 4 and state.max_in_flight == 1


def test_streaming_yields_the_same_text(server, state):
    state.script.extend([Scripted(text='{"appearance": "red cap", "motion": "waves"}')] * 2)
    backend = _backend(server)
    request = VlmRequest(images=views(1), system="", user="x")
    pieces = list(backend.stream(request))
    assert len(pieces) > 1 and "".join(pieces) == backend.generate(request).text


def test_api_key_comes_from_the_environment(server, state, monkeypatch):
    monkeypatch.delenv("VIGIL360_TEST_KEY", raising=False)
    with pytest.raises(HttpBackendError.__mro__[1], match="VIGIL360_TEST_KEY"):
        _backend(server, api_key_env="VIGIL360_TEST_KEY")
    monkeypatch.setenv("VIGIL360_TEST_KEY", "sk-test")
    state.script.append(Scripted(text="[]"))
    _backend(server, api_key_env="VIGIL360_TEST_KEY").generate(VlmRequest(images=views(1), system="", user="x"))
    assert state.requests[0]["headers"]["authorization"] == "Bearer sk-test"
