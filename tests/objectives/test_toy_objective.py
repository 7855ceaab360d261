"""An objective written outside the package plugs into `prefine pretrain` (docs/adding-an-objective.md).

`toy_objective.SwappedTokensObjective` is registered here and nowhere else; `prefine pretrain
--objective swapped-tokens` then trains it on a tiny corpus with its own flag (--swap-shift),
records it in run.json and in every checkpoint, resumes it, and `prefine finetune --init` starts
a classifier from the encoder it trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prefine.checkpoint import load_weights, model_checkpoint_of, read_run
from prefine.cli import main
from prefine.model import BertForSequenceClassification
from prefine.recipes.common import load_initial_weights, resolve_init
from tests.conftest import TINY_PRETRAIN_FLAGS as TINY
from tests.conftest import synthetic_documents, write_bert_text, write_review_tsv
from tests.objectives import toy_objective


@pytest.fixture(autouse=True)
def registered():
    toy_objective.register()


def metrics_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def swap_run(tmp_path, capsys) -> Path:
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(120))
    run = tmp_path / "swap"
    registry = str(tmp_path / "registry.sqlite")
    pretrain = ["pretrain", "--objective", "swapped-tokens", "--corpus", str(corpus), "--out", str(run), "--registry", registry]
    assert main([*pretrain, "--swap-shift", "2", *TINY, "--max-steps", "30", "--eval-every", "10"]) == 0
    (tmp_path / "pretrain-stdout.txt").write_text(capsys.readouterr().out)
    return run


def test_a_registered_objective_pretrains_records_itself_and_learns(swap_run):
    saved = read_run(swap_run)
    assert saved["data"]["objective"] == "swapped-tokens" and saved["swapped-tokens"] == {"swap_shift": 2}
    config = json.loads((swap_run / "checkpoints" / "step-00000030" / "config.json").read_text())
    assert config["pretraining_objective"] == "swapped-tokens" and config["architectures"] == ["BertForSwappedTokenDetection"]
    assert config["model_type"] == "bert"
    evals = [line for line in metrics_lines(swap_run) if "eval/swap_loss" in line]
    assert [line["step"] for line in evals] == [0, 10, 20, 30]
    # From a detector that guesses (about log 2 nats) to one that has at least learned how rare swaps are.
    assert evals[-1]["eval/swap_loss"] < evals[0]["eval/swap_loss"] - 0.1
    assert evals[-1]["eval/swap_accuracy"] > evals[0]["eval/swap_accuracy"]
    printed = (swap_run.parent / "pretrain-stdout.txt").read_text()
    assert f"held-out swapped-token detection: accuracy {evals[-1]['eval/swap_accuracy']:.1%}" in printed


def test_a_registered_objective_resumes_with_its_recorded_settings(swap_run, capsys):
    assert main(["pretrain", "--resume", str(swap_run), "--swap-shift", "1"]) == 2
    error = capsys.readouterr().err
    assert "cannot change --swap-shift when resuming" in error and len(error.strip().splitlines()) == 1
    assert main(["pretrain", "--resume", str(swap_run), "--max-steps", "34", "--eval-every", "0"]) == 0
    assert (swap_run / "checkpoints" / "latest").read_text().strip() == "step-00000034"
    assert read_run(swap_run)["swapped-tokens"] == {"swap_shift": 2}


def test_finetune_starts_from_the_encoder_the_objective_trained(swap_run, tmp_path, capsys):
    train = write_review_tsv(tmp_path / "train.tsv", 48, seed=1)
    dev = write_review_tsv(tmp_path / "dev.tsv", 16, seed=2)
    out = tmp_path / "sentiment"
    finetune = ["finetune", "--init", str(swap_run), "--train", str(train), "--eval", str(dev), "--out", str(out)]
    assert main([*finetune, "--max-steps", "4", "--batch-size", "8", "--num-threads", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"init: prefine checkpoint {model_checkpoint_of(swap_run)}" in printed
    assert read_run(out)["kind"] == "finetune"

    # The classifier's encoder is exactly the one pre-training saved; only its head and pooler are new.
    init = resolve_init(str(swap_run))
    classifier = BertForSequenceClassification(init.config, num_labels=2)
    load_initial_weights(classifier, init, from_scratch=False, announce=False)
    trained = load_weights(model_checkpoint_of(swap_run))
    for name, tensor in classifier.state_dict().items():
        if name.startswith("bert.") and not name.startswith("bert.pooler."):
            assert torch.equal(tensor, trained[name]), name


def test_the_objectives_flag_is_refused_under_another_objective(tmp_path, capsys):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(20))
    command = ["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--objective", "mlm", "--swap-shift", "2", *TINY]
    assert main(command) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        "prefine: error: --swap-shift applies to --objective swapped-tokens only; add --objective swapped-tokens or drop the flag"
    )
    assert not (tmp_path / "run").exists()
