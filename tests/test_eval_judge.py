"""The optional LLM judge, against a local fake OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from test_eval_fixtures import write_fixture

from internvl_chat.eval.benchmarks import ScoreContext, get_benchmark
from internvl_chat.eval.judge import Judge, JudgeError


class FakeLLM(BaseHTTPRequestHandler):
    replies: list[str] = []
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeLLM.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        reply = FakeLLM.replies.pop(0) if FakeLLM.replies else "Z"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    FakeLLM.replies, FakeLLM.requests = [], []
    httpd = HTTPServer(("127.0.0.1", 0), FakeLLM)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()


def test_choose_option_parses_letter_and_retries(server):
    judge = Judge(base_url=server, model="judge-1", api_key="k")
    FakeLLM.replies = ["I am not sure", "B"]
    assert judge.choose_option("Which animal?", {"A": "cat", "B": "dog"}, "a puppy") == "B"
    assert len(FakeLLM.requests) == 2
    first = FakeLLM.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer k"
    assert first["body"]["model"] == "judge-1" and "a puppy" in first["body"]["messages"][0]["content"]
    assert FakeLLM.requests[1]["body"]["temperature"] == 0.5
    FakeLLM.replies = ["Z"]
    assert judge.choose_option("Which animal?", {"A": "cat", "B": "dog"}, "a horse") is None


def test_mathvista_uses_judge_only_when_rules_fail(server, tmp_path):
    bench = get_benchmark("mathvista-testmini")
    samples = bench.load(write_fixture("mathvista-testmini", tmp_path))
    FakeLLM.replies = ["8/11", "1.2"]
    preds = ["I think the largest is the second one", "14", "roughly one point two"]
    result = bench.score(samples, preds, ScoreContext(judge=Judge(base_url=server, model="m")))
    assert result.metrics["judged"] == 2 and len(FakeLLM.requests) == 2  # "14" needed no judge
    assert result.headline == pytest.approx(100.0)
    assert "LLM judge" in result.notes[0]


def test_mmbench_vlmevalkit_flavour_asks_judge_for_unparsed_answers(server, tmp_path):
    bench = get_benchmark("mmbench-dev-en")
    samples = bench.load(write_fixture("mmbench-dev-en", tmp_path))
    preds = [s.answer for s in samples]
    preds[0] = "it is a small furry pet that meows"  # can_infer finds nothing
    FakeLLM.replies = [samples[0].answer]
    judged = bench.score(samples, preds, ScoreContext(flavour="vlmevalkit", judge=Judge(base_url=server, model="m")))
    assert judged.headline == pytest.approx(100.0) and len(FakeLLM.requests) == 1
    exact = bench.score(samples, preds, ScoreContext(flavour="vlmevalkit"))
    assert exact.headline == pytest.approx(50.0)


def test_unreachable_judge_is_an_error_not_a_guess():
    judge = Judge(base_url="http://127.0.0.1:9/v1", model="m", timeout=2)
    with pytest.raises(JudgeError, match="127.0.0.1:9"):
        judge.complete("hi")
