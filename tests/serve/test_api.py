"""`prefine serve`'s HTTP API in process (httpx's ASGI transport): every task, batching, limits, errors, the API key.

Classification, QA and fill-mask share the `models` fixture; NER and generation runs (`task_runs`)
are served too, generation also streaming over /v1/stream.

The expected predictions are the runs' own predictors' (`load_run(...).predict_records`), so the
server is checked against what `prefine predict` would answer. Batching is checked by counting
the predictor's calls, never by timing: the tests that need requests to meet set a long
--max-wait-ms and a batch size the requests fill exactly, so the batch starts when it is full.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading

import httpx
import pytest
import torch

from prefine.errors import PrefineError
from prefine.inference import load_run
from prefine.serve.app import ServeLimits, create_app
from prefine.serve.models import RunReference, load_served_model

LONG_WAIT_MS = 120_000  # a batch never starts on the timer in these tests: only when full


@pytest.fixture(scope="module")
def models(served_runs):
    """The three runs loaded once for serving: fill-mask, classification, QA."""
    references = [RunReference.parse(str(path), "") for path in (served_runs.pretrain, served_runs.sentiment, served_runs.qa)]
    return {reference.name: load_served_model(reference, "cpu") for reference in references}


def serve(models, coroutine_function, api_key: str = "", registry=None, **limits):
    """Run `coroutine_function(client, app)` against a fresh app with `limits`, inside its lifespan."""
    app = create_app(list(models.values()), ServeLimits(**limits), api_key, registry)

    async def main():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                return await coroutine_function(client, app)

    return asyncio.run(main())


def get(models, path: str, **kwargs) -> httpx.Response:
    async def call(client, app):
        return await client.get(path)

    return serve(models, call, **kwargs)


def post(models, body=None, content: bytes | None = None, headers: dict | None = None, **kwargs) -> httpx.Response:
    async def call(client, app):
        if content is not None:
            return await client.post("/v1/predict", content=content, headers={"content-type": "application/json", **(headers or {})})
        return await client.post("/v1/predict", json=body, headers=headers)

    return serve(models, call, **kwargs)


class CallLog:
    """Wraps a predictor's predict_records, recording the inputs of every call; can hold calls until released."""

    def __init__(self, predictor, monkeypatch, hold: bool = False):
        self.calls: list[list[dict]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        original = predictor.predict_records

        def recording(records, *args, **kwargs):
            self.calls.append(list(records))
            self.entered.set()
            self.release.wait(timeout=60)
            return original(records, *args, **kwargs)

        monkeypatch.setattr(predictor, "predict_records", recording)


def assert_close(got, want) -> None:
    """Equal JSON, numbers within float noise (the server's batch may pad differently from a lone call)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys()
        for key in want:
            assert_close(got[key], want[key])
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, list) and len(got) == len(want)
        for got_item, want_item in zip(got, want):
            assert_close(got_item, want_item)
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-5)
    else:
        assert got == want


async def wait_for(condition, what: str) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


# --- what is served -----------------------------------------------------------------------------


def test_models_lists_every_run_with_its_task_and_input_fields(models):
    response = get(models, "/v1/models")
    assert response.status_code == 200
    described = {model["name"]: model for model in response.json()["models"]}
    assert described["tiny-pre"]["task"] == "fill-mask" and described["tiny-pre"]["input_fields"] == ["text"]
    assert described["tiny-pre"]["options"] == {"top_k": 5}
    assert described["sentiment"]["task"] == "classification" and described["sentiment"]["input_fields"] == ["text"]
    assert described["colors"]["task"] == "qa" and described["colors"]["input_fields"] == ["question", "context"]
    assert response.json()["limits"]["max_inputs"] == 64


@pytest.mark.parametrize(
    ("name", "inputs"),
    [
        ("sentiment", ["the cat sees a good house today", {"text": "the cat sees a boring road at night"}]),
        (
            "colors",
            [
                {"question": "What color is the sky?", "context": "It was a quiet day. The sky is blue."},
                {"question": "What color is the car?", "context": "The car is red."},
            ],
        ),
        ("tiny-pre", ["the cat sees a [MASK] house", {"text": "[MASK] cat sees a good [MASK]"}]),
    ],
)
def test_predict_answers_what_the_runs_own_predictor_answers(models, served_runs, name, inputs):
    folder = {"sentiment": served_runs.sentiment, "colors": served_runs.qa, "tiny-pre": served_runs.pretrain}[name]
    records = [{"text": item} if isinstance(item, str) else item for item in inputs]
    expected = load_run(folder, "cpu").predict_records(records)
    response = post(models, {"model": name, "inputs": inputs})
    assert response.status_code == 200, response.text
    assert response.json()["model"] == name
    outputs = response.json()["outputs"]
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        assert_close(got, want)
    if name == "colors":
        first = outputs[0]
        assert inputs[0]["context"][first["start"] : first["end"]] == first["answer"]


def test_options_reach_the_predictor_and_unknown_or_mistyped_ones_are_rejected(models):
    response = post(models, {"model": "tiny-pre", "inputs": ["the cat sees a [MASK] house"], "options": {"top_k": 2}})
    assert response.status_code == 200 and len(response.json()["outputs"][0]["masks"][0]) == 2
    unknown = post(models, {"model": "tiny-pre", "inputs": ["a [MASK]"], "options": {"temperature": 0.5}})
    assert unknown.status_code == 422 and "temperature" in unknown.json()["error"] and "top_k" in unknown.json()["error"]
    mistyped = post(models, {"model": "tiny-pre", "inputs": ["a [MASK]"], "options": {"top_k": "two"}})
    assert mistyped.status_code == 422 and "top_k" in mistyped.json()["error"] and "int" in mistyped.json()["error"]
    none_taken = post(models, {"model": "sentiment", "inputs": ["a"], "options": {"top_k": 2}})
    assert none_taken.status_code == 422 and "none" in none_taken.json()["error"]


def test_runs_are_addressed_by_registry_name_or_renamed(served_runs):
    by_name = RunReference.parse("sentiment", str(served_runs.registry))
    assert by_name.name == "sentiment" and by_name.run_dir.resolve() == served_runs.sentiment.resolve()
    renamed = RunReference.parse(f"mood={served_runs.sentiment}", "")
    assert renamed.name == "mood" and renamed.run_dir == served_runs.sentiment


def test_serving_never_changes_the_model(models):
    model = models["sentiment"].predictor.model
    before = {key: value.clone() for key, value in model.state_dict().items()}
    assert post(models, {"model": "sentiment", "inputs": ["the cat sees a good house"] * 3}).status_code == 200
    assert not model.training
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


# --- dynamic batching ---------------------------------------------------------------------------


def test_concurrent_requests_run_in_one_forward_pass(models, monkeypatch):
    log = CallLog(models["sentiment"].predictor, monkeypatch)
    texts = [
        "the cat sees a good house today",
        "the cat sees a bad road",
        "the cat sees a lovely garden at night",
        "the cat sees an awful road",
    ]
    expected = load_run(models["sentiment"].run_dir, "cpu").predict_records([{"text": text} for text in texts])

    async def scenario(client, app):
        requests = [client.post("/v1/predict", json={"model": "sentiment", "inputs": [text]}) for text in texts]
        return await asyncio.gather(*requests), app.state.batchers["sentiment"].batches_run

    responses, batches = serve(models, scenario, max_batch_size=4, max_wait_ms=LONG_WAIT_MS)
    assert [response.status_code for response in responses] == [200] * 4
    assert len(log.calls) == 1 and sorted(record["text"] for record in log.calls[0]) == sorted(texts) and batches == 1
    for response, want in zip(responses, expected):  # each request gets its own inputs' answers back
        assert response.json()["outputs"][0]["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)


def test_requests_with_different_options_are_not_batched_together(models, monkeypatch):
    log = CallLog(models["tiny-pre"].predictor, monkeypatch)

    async def scenario(client, app):
        bodies = [{"model": "tiny-pre", "inputs": ["a [MASK] house"], "options": {"top_k": k}} for k in (1, 2, 1, 2)]
        return await asyncio.gather(*(client.post("/v1/predict", json=body) for body in bodies))

    responses = serve(models, scenario, max_batch_size=2, max_wait_ms=LONG_WAIT_MS)
    assert [len(response.json()["outputs"][0]["masks"][0]) for response in responses] == [1, 2, 1, 2]
    assert sorted(len(call) for call in log.calls) == [2, 2]


def test_a_bad_input_fails_only_its_own_request_in_a_batch(models, monkeypatch):
    log = CallLog(models["sentiment"].predictor, monkeypatch)

    async def scenario(client, app):
        bodies = [
            {"model": "sentiment", "inputs": ["the cat sees a good house"]},
            {"model": "sentiment", "inputs": [{"review": "no text field"}]},
            {"model": "sentiment", "inputs": ["the cat sees a bad road", "the cat sees a lovely garden"]},
        ]
        return await asyncio.gather(*(client.post("/v1/predict", json=body) for body in bodies))

    good, bad, also_good = serve(models, scenario, max_batch_size=4, max_wait_ms=LONG_WAIT_MS)
    assert len(log.calls[0]) == 4  # they did meet in one batch first
    assert good.status_code == 200 and len(good.json()["outputs"]) == 1
    assert also_good.status_code == 200 and len(also_good.json()["outputs"]) == 2
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_input" and '"text"' in bad.json()["error"]


def test_a_full_queue_answers_503_with_retry_after_and_the_queued_requests_still_succeed(models, monkeypatch):
    log = CallLog(models["sentiment"].predictor, monkeypatch, hold=True)

    async def scenario(client, app):
        batcher = app.state.batchers["sentiment"]
        body = {"model": "sentiment", "inputs": ["the cat sees a good house"]}
        running = asyncio.create_task(client.post("/v1/predict", json=body))
        await wait_for(log.entered.is_set, "the first request to reach the model")
        queued = [asyncio.create_task(client.post("/v1/predict", json=body)) for _ in range(2)]
        await wait_for(lambda: len(batcher.pending) == 2, "two requests to queue")
        overflow = await client.post("/v1/predict", json=body)
        metrics = (await client.get("/metrics")).text
        log.release.set()
        return overflow, metrics, [await task for task in (running, *queued)]

    overflow, metrics, answered = serve(models, scenario, max_batch_size=1, max_wait_ms=0, max_queue=2)
    assert overflow.status_code == 503 and overflow.headers["retry-after"] == "1"
    assert overflow.json()["limit"] == "max_queue" and "--max-queue" in overflow.json()["error"]
    assert 'prefine_queue_depth{model="sentiment"} 2' in metrics
    assert [response.status_code for response in answered] == [200, 200, 200]


# --- limits and bad requests --------------------------------------------------------------------


def test_too_many_inputs_or_too_long_a_text_answer_413_naming_the_limit(models):
    too_many = post(models, {"model": "sentiment", "inputs": ["a"] * 5}, max_inputs=4)
    assert too_many.status_code == 413 and too_many.json()["limit"] == "max_inputs" and "--max-inputs" in too_many.json()["error"]
    too_long = post(models, {"model": "colors", "inputs": [{"question": "q?", "context": "x" * 101}]}, max_chars=100)
    assert too_long.status_code == 413 and too_long.json()["limit"] == "max_chars" and "context" in too_long.json()["error"]
    within = post(models, {"model": "sentiment", "inputs": ["a"] * 4}, max_inputs=4)
    assert within.status_code == 200


def test_a_body_larger_than_the_limits_allow_is_refused_before_it_is_read(models):
    limits = ServeLimits(max_inputs=1, max_chars=10)
    response = post(models, content=b'{"inputs": ["' + b"x" * (limits.max_body_bytes + 1) + b'"]}', max_inputs=1, max_chars=10)
    assert response.status_code == 413 and response.json()["limit"] == "max_body_bytes"

    # Without a Content-Length (chunked upload) the body is counted as it arrives.
    async def chunks():
        yield b'{"model": "sentiment", "inputs": ["'
        for _ in range(limits.max_body_bytes // 1000 + 2):
            yield b"x" * 1000
        yield b'"]}'

    async def call(client, app):
        return await client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})

    chunked = serve(models, call, max_inputs=1, max_chars=10)
    assert chunked.status_code == 413 and chunked.json()["limit"] == "max_body_bytes"
    # A small chunked request still goes through.

    async def small():
        yield b'{"model": "sentiment", "inputs": ["a good house"]}'

    async def call_small(client, app):
        return await client.post("/v1/predict", content=small(), headers={"content-type": "application/json"})

    assert serve(models, call_small).status_code == 200


def test_bad_json_and_malformed_requests_get_one_clear_error(models):
    bad_json = post(models, content=b'{"model": "sentiment", "inputs": [')
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "invalid_json"
    curl_style = post(
        models, content=b'{"model": "sentiment", "inputs": ["a"]}', headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert curl_style.status_code == 200  # `curl -d` sends form encoding; the body is JSON all the same
    not_an_object = post(models, content=b'["a"]')
    assert not_an_object.status_code == 422 and not_an_object.json()["code"] == "invalid_request"
    no_inputs = post(models, {"model": "sentiment"})
    assert no_inputs.status_code == 422 and "inputs" in no_inputs.json()["error"]
    empty = post(models, {"model": "sentiment", "inputs": []})
    assert empty.status_code == 422 and "empty" in empty.json()["error"]
    wrong_fields = post(models, {"model": "colors", "inputs": [{"question": "What color?"}]})
    assert wrong_fields.status_code == 422 and "context" in wrong_fields.json()["error"]


def test_an_unknown_model_is_404_and_the_model_may_be_left_out_only_when_one_is_served(models):
    unknown = post(models, {"model": "nope", "inputs": ["a"]})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_model" and "sentiment" in unknown.json()["error"]
    ambiguous = post(models, {"inputs": ["a"]})
    assert ambiguous.status_code == 422 and ambiguous.json()["code"] == "model_required"
    only = post({"sentiment": models["sentiment"]}, {"inputs": ["the cat sees a good house"]})
    assert only.status_code == 200 and only.json()["model"] == "sentiment"


def test_the_api_key_guards_the_api_but_not_the_page_or_health(models):
    async def scenario(client, app):
        body = {"model": "sentiment", "inputs": ["the cat sees a good house"]}
        return {
            "none": await client.post("/v1/predict", json=body),
            "wrong": await client.post("/v1/predict", json=body, headers={"Authorization": "Bearer nope"}),
            "bearer": await client.post("/v1/predict", json=body, headers={"Authorization": "Bearer s3cret"}),
            "header": await client.post("/v1/predict", json=body, headers={"X-API-Key": "s3cret"}),
            "models": await client.get("/v1/models"),
            "metrics": await client.get("/metrics"),
            "runs": await client.get("/v1/runs"),
            "health": await client.get("/health"),
            "page": await client.get("/"),
            "script": await client.get("/static/app.js"),
        }

    answers = serve(models, scenario, api_key="s3cret")
    assert answers["none"].status_code == 401 and "Authorization: Bearer" in answers["none"].json()["error"]
    assert answers["wrong"].status_code == 401
    assert answers["bearer"].status_code == 200 and answers["header"].status_code == 200
    assert answers["models"].status_code == 401 and answers["metrics"].status_code == 401 and answers["runs"].status_code == 401
    assert answers["health"].status_code == 200 and answers["page"].status_code == 200 and answers["script"].status_code == 200


# --- health, metrics, pages, runs ---------------------------------------------------------------


def test_ready_only_while_the_batchers_run(models):
    app = create_app(list(models.values()), ServeLimits())

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            before = await client.get("/ready")
            async with app.router.lifespan_context(app):
                during = await client.get("/ready")
                health = await client.get("/health")
            after = await client.get("/ready")
            return before, during, health, after

    before, during, health, after = asyncio.run(main())
    assert before.status_code == 503 and after.status_code == 503
    assert during.status_code == 200 and set(during.json()["models"]) == set(models)
    assert health.json() == {"status": "ok"}


def test_metrics_count_requests_errors_latency_and_batch_sizes(models):
    async def scenario(client, app):
        await client.post("/v1/predict", json={"model": "sentiment", "inputs": ["the cat sees a good house", "the cat sees a bad road"]})
        await client.post("/v1/predict", json={"model": "sentiment", "inputs": ["a"] * 3})
        await client.post("/v1/predict", json={"model": "sentiment", "inputs": [{"no": "text"}]})
        await client.post("/v1/predict", json={"model": "no-such-model", "inputs": ["a"]})
        await client.post("/v1/predict", content=b"{", headers={"content-type": "application/json"})
        return await client.get("/metrics")

    response = serve(models, scenario, max_inputs=2)
    text = response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'prefine_requests_total{model="sentiment",code="200"} 1' in text
    assert 'prefine_requests_total{model="sentiment",code="413"} 1' in text
    assert 'prefine_requests_total{model="sentiment",code="422"} 1' in text
    assert 'prefine_request_errors_total{model="sentiment",reason="too_many_inputs"} 1' in text
    assert 'prefine_examples_total{model="sentiment"} 2' in text
    assert 'prefine_request_duration_seconds_count{model="sentiment"} 3' in text
    # Forward passes of 2 inputs and of 1 (the bad input alone): cumulative buckets.
    assert (
        'prefine_batch_size_bucket{model="sentiment",le="1"} 1' in text and 'prefine_batch_size_bucket{model="sentiment",le="2"} 2' in text
    )
    assert 'prefine_batch_size_count{model="sentiment"} 2' in text
    assert "# TYPE prefine_queue_depth gauge" in text
    assert 'prefine_request_errors_total{model="(unknown)",reason="unknown_model"} 1' in text and "no-such-model" not in text
    assert 'prefine_request_errors_total{model="(unknown)",reason="invalid_json"} 1' in text


def test_the_page_and_its_scripts_are_served_from_the_package(models):
    async def scenario(client, app):
        pages = [await client.get(path) for path in ("/", "/runs", "/docs")]
        scripts = [await client.get(f"/static/{name}") for name in ("common.js", "app.js", "runs.js", "docs.js", "style.css")]
        return pages, scripts, await client.get("/openapi.json")

    (index, runs, docs), scripts, openapi = serve(models, scenario)
    assert index.status_code == 200 and "text/html" in index.headers["content-type"] and "/static/app.js" in index.text
    assert runs.status_code == 200 and "/static/runs.js" in runs.text
    assert docs.status_code == 200 and "/static/docs.js" in docs.text
    assert all(script.status_code == 200 for script in scripts)
    for text in [page.text for page in (index, runs, docs)] + [script.text for script in scripts]:
        # Nothing from a CDN: it works offline (the SVG namespace is a name, never fetched).
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg\b)", text)
    assert "/v1/predict" in openapi.json()["paths"] and "/v1/models" in openapi.json()["paths"]


def test_runs_lists_the_registry_with_lineage_and_curves(models, served_runs):
    async def scenario(client, app):
        return [
            await client.get(path)
            for path in ("/v1/runs", "/v1/runs/sentiment", "/v1/runs/tiny-pre", "/v1/runs/tiny-pre/metrics", "/v1/runs/nope")
        ]

    listing, sentiment, pretrain, curve, missing = serve(models, scenario, registry=served_runs.registry)
    runs = {run["name"]: run for run in listing.json()["runs"]}
    assert set(runs) == {"tiny-pre", "sentiment", "colors"}
    assert runs["sentiment"]["parent"] == "tiny-pre" and runs["sentiment"]["served_as"] == ["sentiment"]
    assert runs["tiny-pre"]["key_metric"] == {"name": "eval/mlm_accuracy", "value": 0.25}
    assert [run["name"] for run in sentiment.json()["ancestors"]] == ["tiny-pre"]
    assert {run["name"] for run in pretrain.json()["descendants"]} == {"sentiment", "colors"}
    records = curve.json()["records"]
    assert [record["train/loss"] for record in records if "train/loss" in record] == [5.0, 4.0, 3.0]
    assert missing.status_code == 404


# --- streaming (the hook a generation task plugs into) --------------------------------------------


class EchoStreamer:
    """A stand-in for a generation predictor: 'decodes' each input's words one by one."""

    input_fields = ("text",)

    def predict_records(self, records, batch_size=64, max_new_tokens=8):
        return [{"generated_text": " ".join(record["text"].split()[:max_new_tokens])} for record in records]

    def stream_records(self, records, max_new_tokens=8):
        for index, record in enumerate(records):
            if "text" not in record:
                raise PrefineError(f'input {index + 1} has no "text" string')
            words = record["text"].split()[:max_new_tokens]
            for position, word in enumerate(words):
                yield {"index": index, "delta": (" " if position else "") + word}
            yield {"index": index, "output": {"generated_text": " ".join(words)}}


def streaming_models(models):
    from prefine.serve.models import ServedModel, predictor_options

    echo = EchoStreamer()
    streamer = ServedModel(
        "echo", models["sentiment"].run_dir, "finetune", "generation", "echo", echo, echo.input_fields, predictor_options(echo)
    )
    return {"echo": streamer, "sentiment": models["sentiment"]}


def test_a_streaming_model_sends_its_events_as_json_lines(models):
    async def scenario(client, app):
        listed = (await client.get("/v1/models")).json()["models"]
        streamed = await client.post("/v1/stream", json={"model": "echo", "inputs": ["one two three"], "options": {"max_new_tokens": 2}})
        broken = await client.post("/v1/stream", json={"model": "echo", "inputs": [{"prompt": "x"}]})
        refused = await client.post("/v1/stream", json={"model": "sentiment", "inputs": ["a"]})
        return listed, streamed, broken, refused

    listed, streamed, broken, refused = serve(streaming_models(models), scenario)
    assert {model["name"]: model["streams"] for model in listed} == {"echo": True, "sentiment": False}
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in streamed.text.splitlines()]
    assert events == [{"index": 0, "delta": "one"}, {"index": 0, "delta": " two"}, {"index": 0, "output": {"generated_text": "one two"}}]
    assert json.loads(broken.text.splitlines()[-1]) == {"error": 'input 1 has no "text" string', "code": "invalid_input"}
    assert refused.status_code == 422 and refused.json()["code"] == "streaming_unsupported"


@pytest.fixture(scope="module")
def task_runs(served_runs, tmp_path_factory):
    """A NER run and a generation run fine-tuned from the same tiny encoder, loaded for serving."""
    from prefine.cli import main

    root = tmp_path_factory.mktemp("more-tasks")
    sentences = [
        ("the cat sees Paris today", "O O O B-LOC O"),
        ("a good house in Seoul", "O O O O B-LOC"),
        ("the road to Paris", "O O O B-LOC"),
    ] * 6
    (root / "train.conll").write_text(
        "".join("".join(f"{w}\t{t}\n" for w, t in zip(s.split(), tags.split())) + "\n" for s, tags in sentences), encoding="utf-8"
    )
    pairs = [{"document": text, "summary": " ".join(text.split()[:2])} for text, _ in sentences]
    (root / "pairs.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in pairs), encoding="utf-8")
    # Their own registry: the page test counts the runs of the shared one.
    steps = [
        "--max-steps",
        "3",
        "--batch-size",
        "8",
        "--num-threads",
        "1",
        "--no-progress",
        "--seed",
        "0",
        "--registry",
        str(root / "registry.sqlite"),
    ]
    assert (
        main(
            [
                "finetune",
                "--task",
                "ner",
                "--init",
                str(served_runs.pretrain),
                "--train",
                str(root / "train.conll"),
                "--out",
                str(root / "places"),
                "--max-seq-length",
                "32",
                *steps,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "finetune",
                "--task",
                "generation",
                "--init",
                str(served_runs.pretrain),
                "--train",
                str(root / "pairs.jsonl"),
                "--out",
                str(root / "headlines"),
                "--max-source-length",
                "32",
                "--max-target-length",
                "8",
                *steps,
            ]
        )
        == 0
    )
    references = [RunReference.parse(str(root / name), "") for name in ("places", "headlines")]
    return {reference.name: load_served_model(reference, "cpu") for reference in references}


def test_entity_and_generation_runs_answer_what_their_own_predictors_answer(task_runs):
    texts = ["the road to Seoul", "a good house in Paris"]
    for name in ("places", "headlines"):
        expected = load_run(task_runs[name].run_dir, "cpu").predict_records([{"text": text} for text in texts])
        response = post(task_runs, {"model": name, "inputs": texts})
        assert response.status_code == 200, response.text
        for got, want in zip(response.json()["outputs"], expected):
            assert_close(got, want)
    assert all("entities" in output for output in post(task_runs, {"model": "places", "inputs": texts}).json()["outputs"])
    # Decoding options reach the generator as JSON; unknown ones are one clear error.
    short = post(task_runs, {"model": "headlines", "inputs": texts, "options": {"decoding": {"max_new_tokens": 2}}})
    assert short.status_code == 200, short.text
    assert short.json()["outputs"] == load_run(task_runs["headlines"].run_dir, "cpu").predict_records(
        [{"text": t} for t in texts], decoding={"max_new_tokens": 2}
    )
    refused = post(task_runs, {"model": "headlines", "inputs": texts, "options": {"decoding": {"beams": 4}}})
    assert refused.status_code == 422 and "unknown decoding option" in refused.json()["error"]


def test_a_generation_run_streams_its_text_as_it_is_decoded(task_runs):
    async def scenario(client, app):
        listed = (await client.get("/v1/models")).json()["models"]
        streamed = await client.post("/v1/stream", json={"model": "headlines", "inputs": ["the road to Seoul"]})
        return listed, streamed

    listed, streamed = serve(task_runs, scenario)
    assert {model["name"]: model["streams"] for model in listed} == {"places": False, "headlines": True}
    assert streamed.status_code == 200, streamed.text
    events = [json.loads(line) for line in streamed.text.splitlines()]
    final = events[-1]["output"]["generated"]
    assert final and len(events) >= 3  # some text, sent in pieces before the final output
    assert final == load_run(task_runs["headlines"].run_dir, "cpu").predict_records([{"text": "the road to Seoul"}])[0]["generated"]
    assert "".join(event["delta"] for event in events if "delta" in event) == final
