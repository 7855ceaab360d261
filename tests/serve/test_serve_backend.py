"""`prefine serve --backend onnx|onnx-int8`: the server answers what PyTorch answers and says which backend runs each model.

The sentiment and QA runs are loaded with their encoder in ONNX Runtime and served in process
(httpx's ASGI transport, as test_api.py does); /v1/predict must give PyTorch's labels and answers
(scores within 1e-4), and /v1/models and /metrics name the backend. The command passes --backend
to every run it loads, and refuses a run the backend cannot compute before loading any.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from prefine.cli import main
from prefine.interop.onnx_runtime import OnnxEncoder
from prefine.recipes import serve as serve_recipe
from prefine.serve.app import ServeLimits, create_app
from prefine.serve.models import RunReference, load_served_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

REVIEWS = ["the cat sees a good house today", "the cat sees a bad road at night", "lovely", "awful garden"]
QUESTIONS = [{"question": "What color is the car?", "context": "It was a quiet day. The car is blue."}]


def ask(models, calls):
    app = create_app(models, ServeLimits())

    async def run():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                return [await call(client) for call in calls]

    return asyncio.run(run())


def predict(name, inputs):
    async def call(client):
        response = await client.post("/v1/predict", json={"model": name, "inputs": inputs})
        assert response.status_code == 200, response.text
        return response.json()["outputs"]

    return call


def get(path):
    async def call(client):
        return (await client.get(path)).text

    return call


def numbers(outputs) -> list[float]:
    found: list[float] = []
    json.loads(json.dumps(outputs), parse_float=lambda value: found.append(float(value)) or 0.0)
    return found


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_the_server_names_the_backend_on_models_and_metrics(served_runs, tmp_path, backend):
    reference = RunReference.parse(str(served_runs.sentiment), "")
    model = load_served_model(reference, "cpu", backend, tmp_path)
    assert isinstance(model.predictor.model.bert, OnnxEncoder)
    listed, metrics = ask([model], [get("/v1/models"), get("/metrics")])
    assert json.loads(listed)["models"][0]["backend"] == backend
    assert f'prefine_model_backend{{model="{reference.name}",backend="{backend}"}} 1' in metrics


def test_onnx_served_predictions_are_torchs(served_runs, tmp_path):
    references = [RunReference.parse(str(path), "") for path in (served_runs.sentiment, served_runs.qa)]
    onnx = [load_served_model(reference, "cpu", "onnx", tmp_path) for reference in references]
    torch_models = [load_served_model(reference, "cpu") for reference in references]
    calls = [predict(references[0].name, REVIEWS), predict(references[1].name, QUESTIONS)]
    expected, actual = ask(torch_models, calls), ask(onnx, calls)
    strip = json.loads(json.dumps(expected), parse_float=lambda value: 0.0)
    assert json.loads(json.dumps(actual), parse_float=lambda value: 0.0) == strip  # labels, answers, offsets
    assert max(abs(want - got) for want, got in zip(numbers(expected), numbers(actual))) <= 1e-4
    assert ask(torch_models, [get("/metrics")])[0].count('backend="torch"') == 2


def test_the_command_loads_every_run_on_the_backend(served_runs, monkeypatch):
    served = {}

    async def capture(models, config, *rest):
        served["models"] = models
        return 0

    monkeypatch.setattr(serve_recipe, "_serve", capture)
    assert main(["serve", str(served_runs.sentiment), str(served_runs.qa), "--port", "0", "--backend", "onnx", "--num-threads", "1"]) == 0
    assert [model.backend for model in served["models"]] == ["onnx", "onnx"]
    assert all(isinstance(model.predictor.model.bert, OnnxEncoder) for model in served["models"])


def test_a_run_the_backend_cannot_compute_is_refused_before_any_loads(served_runs, capsys, monkeypatch):
    loaded = []
    monkeypatch.setattr(serve_recipe, "load_served_model", lambda *arguments: loaded.append(arguments))
    assert main(["serve", str(served_runs.sentiment), str(served_runs.pretrain), "--port", "0", "--backend", "onnx-int8"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--backend onnx-int8 runs fine-tuned runs" in error and loaded == []
