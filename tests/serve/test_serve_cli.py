"""`prefine serve` as a command: bad input fails in one line before any work, and a real server drains on SIGTERM."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from prefine.cli import main
from tests.serve.conftest import RunningServer


def error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prefine: error:"), captured.err
    return lines[0]


def test_a_missing_run_fails_in_one_line(capsys, tmp_path):
    assert main(["serve", str(tmp_path / "nowhere"), "--registry", str(tmp_path / "registry.sqlite")]) == 2
    assert "not found" in error_line(capsys)


def test_two_runs_under_one_name_are_refused(served_runs, capsys):
    assert main(["serve", str(served_runs.sentiment), f"sentiment={served_runs.qa}"]) == 2
    assert "NAME=RUN" in error_line(capsys)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--max-batch-size", "0"], "--max-batch-size"),
        (["--max-wait-ms", "-1"], "--max-wait-ms"),
        (["--port", "70000"], "--port"),
        (["--max-queue", "0"], "--max-queue"),
    ],
)
def test_bad_limits_are_refused_before_loading(served_runs, capsys, flags, named):
    assert main(["serve", str(served_runs.sentiment), *flags]) == 2
    assert named in error_line(capsys)


def test_a_taken_port_is_reported_before_any_model_loads(served_runs, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", str(served_runs.sentiment), "--port", str(port)]) == 2
    assert f"127.0.0.1:{port}" in error_line(capsys)


def test_without_the_serve_extra_the_error_names_it(served_runs, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what a missing package looks like to import
    assert main(["serve", str(served_runs.sentiment)]) == 2
    assert "pip install 'prefine[serve]'" in error_line(capsys)


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/v1/predict", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_sigterm_stops_accepting_finishes_the_request_in_flight_and_exits_0(served_runs):
    # A long --max-wait-ms keeps the request waiting in the queue while SIGTERM arrives.
    server = RunningServer(str(served_runs.sentiment), "--max-wait-ms", "3000", "--registry", str(served_runs.registry))
    try:
        with urllib.request.urlopen(server.url + "/ready", timeout=30) as response:
            assert json.loads(response.read())["status"] == "ready"
        answer: dict = {}
        request = threading.Thread(
            target=lambda: answer.update(zip(("status", "body"), _post(server.url, {"inputs": ["the cat sees a good house"]})))
        )
        request.start()
        for _ in range(600):
            with urllib.request.urlopen(server.url + "/metrics", timeout=30) as response:
                if 'prefine_queue_depth{model="sentiment"} 1' in response.read().decode():
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the request never reached the queue")
        code = server.stop()
        request.join(timeout=60)
    finally:
        server.stop()
    assert answer["status"] == 200 and answer["body"]["outputs"][0]["label"] in {"pos", "neg"}
    assert code == 0, server.output
    assert "SIGTERM" in server.output and "stopped" in server.output
    with pytest.raises(OSError):  # nothing listens any more
        urllib.request.urlopen(server.url + "/health", timeout=5)


def test_only_loopback_addresses_count_as_private():
    from prefine.recipes.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("::")
