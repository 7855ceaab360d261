"""`prefine serve` answers every run with the task that trained it, even where two tasks share a transformers class.

The toy text-length task (tests/tasks/text_length_task.py, registered outside the package) and a
classification run in regression mode hold the same kind of model: a BertForSequenceClassification
with one output. Served side by side, each must be described as its own task and answer with its
own task's predictor: {"length": ...} for the toy, {"score": ...} for the regression.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from prefine.inference import load_run
from prefine.serve.app import ServeLimits, create_app
from prefine.serve.models import RunReference, load_served_model

sys.path.insert(0, str(Path(__file__).parents[1] / "tasks"))
from shared_architecture_runs import TEXTS, toy_task_registered, train_runs  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(text-length run, regression run), with the toy task registered while this module's tests run."""
    with toy_task_registered():
        yield train_runs(tmp_path_factory.mktemp("two-tasks"))


def test_two_tasks_sharing_an_architecture_are_each_served_by_their_own_task(runs):
    length_run, regression_run = runs
    models = [load_served_model(RunReference.parse(str(run), ""), "cpu") for run in runs]
    app = create_app(models, ServeLimits(), "", None)

    async def requests():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                listed = (await client.get("/v1/models")).json()["models"]
                answers = {}
                for name in ("length", "regression"):
                    answers[name] = await client.post("/v1/predict", json={"model": name, "inputs": TEXTS})
                return listed, answers

    listed, answers = asyncio.run(requests())
    assert {model["name"]: model["task"] for model in listed} == {"length": "text-length", "regression": "classification"}
    records = [{"text": text} for text in TEXTS]
    for name, run, key in (("length", length_run, "length"), ("regression", regression_run, "score")):
        assert answers[name].status_code == 200, answers[name].text
        outputs = answers[name].json()["outputs"]
        assert [set(output) for output in outputs] == [{key}, {key}]
        expected = [record[key] for record in load_run(run).predict_records(records)]
        assert [output[key] for output in outputs] == pytest.approx(expected, abs=1e-5)
