"""The web page in a real browser: headless Chromium against a real `prefine serve` on tiny runs.

A person's path through the page: pick a model, type a text, press Ctrl+Enter, read the
prediction (and the same for QA, where the answer is highlighted in its context); then the
runs page with its lineage and curve. The screenshot is saved under the test's temp folder;
with PREFINE_SCREENSHOT_TO=docs/serve-page.png it is also written there, for the README.
Chromium is required, not optional: .ci/run installs Debian's package when it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

from tests.serve.browser import Browser
from tests.serve.conftest import RunningServer

REVIEW = "the cat sees a lovely garden today"


def api_prediction(url: str, body: dict) -> dict:
    request = urllib.request.Request(url + "/v1/predict", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["outputs"][0]


def choose_model(browser: Browser, name: str) -> None:
    browser.evaluate(
        f"(() => {{ const s = document.getElementById('model'); s.value = {json.dumps(name)}; s.dispatchEvent(new Event('change')); }})()"
    )


def test_a_person_can_try_the_models_and_browse_the_runs(served_runs, tmp_path):
    server = RunningServer(
        str(served_runs.sentiment), f"second-look={served_runs.sentiment}", str(served_runs.qa), "--registry", str(served_runs.registry)
    )
    try:
        with Browser() as browser:
            browser.open(server.url + "/")
            browser.wait_for("document.querySelectorAll('#model option').length === 3")
            choose_model(browser, "sentiment")
            browser.evaluate("document.querySelector('#compare-list input[value=\"second-look\"]').click()")
            browser.type_into("#field-text", REVIEW)
            browser.press_ctrl_enter()
            shown = browser.wait_for(
                "document.getElementById('results').innerText.split('Label:').length === 3 && document.getElementById('results').innerText"
            )
            expected = api_prediction(server.url, {"model": "sentiment", "inputs": [REVIEW]})
            top = max(expected["probabilities"].values())
            assert f"Label: {expected['label']}" in shown and "second-look" in shown
            assert browser.evaluate("document.querySelectorAll('#results .bars li').length") == 4  # two labels, two models
            assert f"{100 * top:.1f}%" in shown
            bar_percent = browser.evaluate(
                "(() => { const bar = document.querySelector('#results .bars li.top'); "
                "return 100 * bar.querySelector('.fill').getBoundingClientRect().width "
                "/ bar.querySelector('.track').getBoundingClientRect().width; })()"
            )
            assert abs(bar_percent - 100 * top) < 1.5  # the bar is drawn as long as the probability
            screenshot = browser.screenshot(tmp_path / "serve-page.png")
            assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("PREFINE_SCREENSHOT_TO"):
                shutil.copyfile(screenshot, Path(os.environ["PREFINE_SCREENSHOT_TO"]))

            choose_model(browser, "colors")
            context = "It was a quiet day. The sky is blue."
            browser.type_into("#field-question", "What color is the sky?")
            browser.type_into("#field-context", context)
            browser.evaluate("document.getElementById('predict').click()")
            answer = api_prediction(server.url, {"model": "colors", "inputs": [{"question": "What color is the sky?", "context": context}]})
            if answer["answer"]:
                marked = browser.wait_for("document.querySelector('#results mark') && document.querySelector('#results mark').innerText")
                assert marked == context[answer["start"] : answer["end"]] == answer["answer"]
            else:
                assert "No answer" in browser.wait_for(
                    "document.getElementById('results').innerText.includes('No answer') && document.getElementById('results').innerText"
                )

            browser.open(server.url + "/runs?run=sentiment")
            browser.wait_for("document.querySelectorAll('#runs tbody tr').length === 3")
            served_as = browser.evaluate("document.querySelector('#runs tr[data-name=\"sentiment\"] td:last-child').innerText")
            assert served_as == "sentiment, second-look"
            lineage = browser.wait_for(
                "!document.getElementById('detail').hidden && document.getElementById('lineage').innerText.includes('sentiment') "
                "&& document.getElementById('lineage').innerText"
            )
            assert lineage.index("tiny-pre") < lineage.index("sentiment")
            browser.evaluate("[...document.querySelectorAll('#runs button.link')].find((b) => b.textContent === 'tiny-pre').click()")
            browser.wait_for("document.getElementById('detail-title').textContent === 'pretrain tiny-pre'")
            points = browser.wait_for(
                "document.querySelector('#chart polyline') && document.querySelector('#chart polyline').getAttribute('points')"
            )
            assert len(points.split()) == 3  # train/loss at steps 1, 2, 3
            browser.screenshot(tmp_path / "runs-page.png")
    finally:
        assert server.stop() == 0, server.output
