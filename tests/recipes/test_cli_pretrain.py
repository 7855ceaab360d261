"""End-to-end CLI runs: pretrain, resume, fill-mask, fine-tune, predict, evaluate, export, lineage, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from prefine.cli import main
from tests.conftest import TINY_PRETRAIN_FLAGS as TINY
from tests.conftest import synthetic_documents, write_bert_text


def pretrain(tmp_path: Path, corpus: Path, out: str, *extra: str) -> int:
    return main(
        ["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / out), "--registry", str(tmp_path / "registry.sqlite"), *TINY, *extra]
    )


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    """A tiny pre-trained run shared by the fine-tuning tests (training it once keeps the suite fast)."""
    root = tmp_path_factory.mktemp("cli")
    corpus = write_bert_text(root / "corpus.txt", synthetic_documents(120))
    os.environ["PREFINE_CACHE"] = str(root / "cache")
    assert pretrain(root, corpus, "pre", "--max-steps", "6", "--eval-every", "3") == 0
    return root


def metrics_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_pretrain_writes_a_complete_run(pretrained_run):
    run = pretrained_run / "pre"
    saved = json.loads((run / "run.json").read_text())
    assert saved["kind"] == "pretrain" and saved["model"]["hidden_size"] == 128
    assert (run / "tokenizer" / "tokenizer.json").exists() and (run / "tokenizer" / "vocab.txt").exists()
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000006"
    evals = [line for line in metrics_lines(run) if "eval/mlm_accuracy" in line]
    assert [line["step"] for line in evals] == [0, 3, 6]
    assert all(0.0 <= line["eval/mlm_accuracy"] <= 1.0 and line["eval/perplexity"] > 1 for line in evals)


def test_fill_mask_prints_candidates(pretrained_run, capsys):
    assert main(["fill-mask", str(pretrained_run / "pre"), "the cat sees the [MASK] every morning", "--top-k", "3"]) == 0
    output = capsys.readouterr().out
    assert output.startswith("[MASK] 1:") and output.count("%") == 3 and "->" in output


def test_resume_continues_to_the_new_length_and_refuses_config_changes(pretrained_run, capsys):
    run = pretrained_run / "pre"
    assert main(["pretrain", "--resume", str(run), "--preset", "mini"]) == 2
    assert "cannot change --preset when resuming" in capsys.readouterr().err
    assert main(["pretrain", "--resume", str(run), "--learning-rate", "0.1"]) == 2
    assert main(["pretrain", "--resume", str(run), "--max-steps", "8", "--eval-every", "4"]) == 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000008"
    steps = [line["step"] for line in metrics_lines(run) if "train/loss" in line]
    assert steps == sorted(steps) and steps[-1] == 8


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    assert main(["pretrain", "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err and "Traceback" not in err
    (tmp_path / "empty.txt").write_text("")
    assert main(["pretrain", "--corpus", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "r2"), *TINY]) == 2
    assert capsys.readouterr().err.startswith("prefine: error:")
    (tmp_path / "latin1.txt").write_bytes("first line\ncaf\xe9 au lait\n".encode("latin-1"))
    assert main(["pretrain", "--corpus", str(tmp_path / "latin1.txt"), "--out", str(tmp_path / "r3"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "UTF-8" in err
    tiny_file = write_bert_text(tmp_path / "small.txt", synthetic_documents(3))
    assert main(["pretrain", "--corpus", str(tiny_file), "--out", str(tmp_path / "r4"), *TINY, "--max-steps", "2"]) == 2
    assert "add text or lower --max-seq-length" in capsys.readouterr().err


def test_unknown_preset_is_rejected_before_any_work(tmp_path, capsys):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(40))
    args = ["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "r"), *TINY, "--preset", "nonexistent"]
    assert main(args) == 2
    captured = capsys.readouterr()
    presets = "auto, tiny, mini, small, medium, base, large"
    assert captured.err.strip() == f"prefine: error: unknown preset 'nonexistent'; choose one of {presets}"
    assert captured.out == "" and not (tmp_path / "r").exists()


def test_pretraining_runs_without_dropout_unless_asked(pretrained_run, tmp_path):
    saved = json.loads((pretrained_run / "pre" / "run.json").read_text())
    assert saved["model"]["hidden_dropout_prob"] == 0.0 and saved["model"]["attention_probs_dropout_prob"] == 0.0
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(60))
    assert pretrain(tmp_path, corpus, "with-dropout", "--max-steps", "1", "--hidden-dropout-prob", "0.1") == 0
    saved = json.loads((tmp_path / "with-dropout" / "run.json").read_text())
    assert saved["model"]["hidden_dropout_prob"] == 0.1 and saved["model"]["attention_probs_dropout_prob"] == 0.0


def test_new_runs_untie_the_mlm_head_and_electra_keeps_it_tied(pretrained_run, tmp_path, capsys):
    saved = json.loads((pretrained_run / "pre" / "run.json").read_text())
    assert saved["model"]["tie_word_embeddings"] is False
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(60))
    assert pretrain(tmp_path, corpus, "tied", "--max-steps", "1", "--tie-word-embeddings") == 0
    assert json.loads((tmp_path / "tied" / "run.json").read_text())["model"]["tie_word_embeddings"] is True
    capsys.readouterr()
    assert pretrain(tmp_path, corpus, "electra", "--objective", "electra", "--no-tie-word-embeddings") == 2
    assert "--no-tie-word-embeddings does not apply to --objective electra" in capsys.readouterr().err
    assert not (tmp_path / "electra").exists()


def write_sentiment(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("document\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    return path


def sentiment_rows(count: int, seed: int) -> list[tuple[str, str]]:
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        good = rng.random() < 0.5
        word = rng.choice(["great", "good", "lovely"] if good else ["bad", "awful", "boring"])
        rows.append((f"the cat sees a {word} house {rng.choice(['today', 'at night', 'once again'])}", "pos" if good else "neg"))
    return rows


def test_finetune_predict_evaluate_export_and_lineage(pretrained_run, capsys):
    root = pretrained_run
    train = write_sentiment(root / "train.tsv", sentiment_rows(160, 1))
    test = write_sentiment(root / "test.tsv", sentiment_rows(60, 2))
    registry = str(root / "registry.sqlite")
    args = [
        "finetune",
        "--init",
        str(root / "pre"),
        "--train",
        str(train),
        "--eval",
        str(test),
        "--out",
        str(root / "sent"),
        "--text-column",
        "document",
        "--label-column",
        "label",
        "--max-steps",
        "60",
        "--learning-rate",
        "1e-3",
        "--batch-size",
        "16",
        "--eval-every",
        "20",
        "--no-eval-at-epoch-end",
        "--num-threads",
        "1",
        "--no-progress",
        "--registry",
        registry,
    ]
    assert main(args) == 0
    scores = json.loads((root / "sent" / "eval_metrics.json").read_text())
    assert scores["accuracy"] >= 0.9  # the sentiment word decides the label

    capsys.readouterr()
    assert main(["evaluate", str(root / "sent"), "--data", str(test)]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["accuracy"] == pytest.approx(scores["accuracy"])

    assert main(["predict", str(root / "sent"), "--data", str(test), "--output", str(root / "pred.jsonl")]) == 0
    predictions = [json.loads(line) for line in (root / "pred.jsonl").read_text().splitlines()]
    assert len(predictions) == 60 and set(predictions[0]["probabilities"]) == {"neg", "pos"}

    write_sentiment(root / "unseen.tsv", [("the cat sees a house", "neutral")])
    assert main(["evaluate", str(root / "sent"), "--data", str(root / "unseen.tsv")]) == 2
    assert "neutral" in capsys.readouterr().err

    assert main(["finetune", *args[1:8], str(root / "sent2"), *args[9:], "--name", "sent-again"]) == 0
    assert main(["export", str(root / "sent"), "--format", "hf", "--out", str(root / "exported")]) == 0
    assert json.loads((root / "exported" / "config.json").read_text())["architectures"] == ["BertForSequenceClassification"]

    capsys.readouterr()
    assert main(["lineage", "pre", "--descendants", "--registry", registry]) == 0
    tree = capsys.readouterr().out
    assert tree.index("pretrain pre") < tree.index("finetune sent") and "sent-again" in tree
    assert main(["lineage", "sent", "--registry", registry]) == 0
    chain = capsys.readouterr().out
    assert chain.index("pre") < chain.index("sent")


def test_finetune_picks_rate_by_width_and_restores_dropout(pretrained_run, capsys):
    root = pretrained_run
    train = write_sentiment(root / "train-lr.tsv", sentiment_rows(40, 3))
    base = [
        "finetune",
        "--init",
        str(root / "pre"),
        "--train",
        str(train),
        "--text-column",
        "document",
        "--max-steps",
        "1",
        "--num-threads",
        "1",
        "--no-progress",
        "--registry",
        str(root / "registry.sqlite"),
    ]
    capsys.readouterr()
    assert main([*base, "--out", str(root / "auto-lr")]) == 0
    assert "at learning rate 0.00093" in capsys.readouterr().out  # tiny: hidden 128
    saved = json.loads((root / "auto-lr" / "run.json").read_text())
    assert saved["training"]["learning_rate"] == 0.00093
    # The run was pre-trained without dropout; fine-tuning trains with BERT's 0.1 unless told otherwise.
    assert saved["model"]["hidden_dropout_prob"] == 0.1 and saved["model"]["attention_probs_dropout_prob"] == 0.1
    assert main([*base, "--out", str(root / "own-lr"), "--learning-rate", "2e-4", "--dropout", "-1"]) == 0
    saved = json.loads((root / "own-lr" / "run.json").read_text())
    assert saved["training"]["learning_rate"] == 2e-4 and saved["model"]["hidden_dropout_prob"] == 0.0


def test_finetune_learning_rate_falls_with_width():
    from prefine.model import preset_config
    from prefine.recipes.common import finetune_learning_rate

    rates = {name: finetune_learning_rate(preset_config(name)) for name in ("tiny", "mini", "small", "base", "large")}
    assert rates["tiny"] > rates["mini"] > rates["small"] > rates["base"] > rates["large"] > 1e-5
    # BERT-base lands in the range its paper fine-tuned with (2e-5..5e-5); small models get far more.
    assert 2e-5 <= rates["base"] <= 5e-5 and rates["mini"] >= 4 * rates["base"]


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(tmp_path):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(150))
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "prefine",
        "pretrain",
        "--corpus",
        str(corpus),
        "--out",
        str(out),
        "--registry",
        str(tmp_path / "registry.sqlite"),
        *TINY,
        "--max-steps",
        "100000",
        "--eval-every",
        "0",
        "--log-every",
        "1",
    ]
    env = {**os.environ, "PREFINE_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "metrics.jsonl").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= 3):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in err and "interrupted at step" in err
    saved_step = int((out / "checkpoints" / "latest").read_text().strip().removeprefix("step-"))
    assert saved_step >= 3
    status = subprocess.run(
        [sys.executable, "-m", "prefine", "runs", "--registry", str(tmp_path / "registry.sqlite")], capture_output=True, text=True, env=env
    )
    assert "interrupted" in status.stdout
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefine",
            "pretrain",
            "--resume",
            str(out),
            "--max-steps",
            str(saved_step + 2),
            "--registry",
            str(tmp_path / "registry.sqlite"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "checkpoints" / "latest").read_text().strip() == f"step-{saved_step + 2:08d}"


def test_batch_ramp_grows_the_batch_and_is_validated_first(tmp_path, capsys):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(60))
    assert pretrain(tmp_path, corpus, "flat", "--max-steps", "2", "--batch-ramp", "0.5") == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "--gradient-accumulation-steps" in captured.err and captured.out == ""
    assert not (tmp_path / "flat").exists()
    assert (
        pretrain(
            tmp_path, corpus, "ramp", "--max-steps", "4", "--log-every", "1", "--gradient-accumulation-steps", "4", "--batch-ramp", "0.5"
        )
        == 0
    )
    assert "growing from 2 over the first 50% of the budget" in capsys.readouterr().out
    assert [line["train/batch_size"] for line in metrics_lines(tmp_path / "ramp") if "train/batch_size" in line] == [2, 6, 8, 8]
    assert json.loads((tmp_path / "ramp" / "run.json").read_text())["training"]["batch_ramp"] == 0.5


def test_new_models_start_from_word_frequencies_and_end_beside_them(tmp_path, capsys):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(60))
    assert pretrain(tmp_path, corpus, "run", "--max-steps", "2") == 0
    last = [line for line in metrics_lines(tmp_path / "run") if "eval/mlm_loss" in line][-1]
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(
        f"held-out masked LM: loss {last['eval/mlm_loss']:.2f} nats, accuracy {last['eval/mlm_accuracy']:.1%} (word frequencies alone: "
    )
    frequencies_loss = float(summary.split("word frequencies alone: ")[1].split(" nats")[0])
    # A new model starts from the word frequencies (--frequency-bias), not from a uniform guess.
    first = [line for line in metrics_lines(tmp_path / "run") if "eval/mlm_loss" in line][0]
    assert first["step"] == 0 and abs(first["eval/mlm_loss"] - frequencies_loss) < 0.25
    assert pretrain(tmp_path, corpus, "zero-bias", "--max-steps", "1", "--no-frequency-bias") == 0
    first = [line for line in metrics_lines(tmp_path / "zero-bias") if "eval/mlm_loss" in line][0]
    assert first["eval/mlm_loss"] > frequencies_loss + 0.5


def test_mimetic_init_starts_new_models_with_sinusoidal_positions_when_asked(pretrained_run, tmp_path, capsys):
    from prefine.checkpoint import latest_checkpoint, load_weights

    def neighbour_similarity(run_dir: Path) -> float:
        weights = load_weights(latest_checkpoint(run_dir))
        # bert.* for masked LM, electra.* (shared with the generator) for ELECTRA.
        table = next(value for name, value in weights.items() if name.endswith("embeddings.position_embeddings.weight")).float()
        table = table / table.norm(dim=-1, keepdim=True)
        return float((table[:-1] * table[1:]).sum(-1).mean())

    # BERT's init by default: random position rows, unrelated neighbours.
    assert json.loads((pretrained_run / "pre" / "run.json").read_text())["run"]["mimetic_init"] is False
    assert abs(neighbour_similarity(pretrained_run / "pre")) < 0.2
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(60))
    for objective in ("mlm", "electra"):
        out = f"mimetic-{objective}"
        assert pretrain(tmp_path, corpus, out, "--objective", objective, "--max-steps", "2", "--mimetic-init") == 0
        assert json.loads((tmp_path / out / "run.json").read_text())["run"]["mimetic_init"] is True
        # Two small steps leave the sinusoids' neighbours alike.
        assert neighbour_similarity(tmp_path / out) > 0.7
    # Continued pre-training keeps the weights it starts from: asking for both is refused up front.
    capsys.readouterr()
    assert pretrain(tmp_path, corpus, "continued", "--init", str(pretrained_run / "pre"), "--mimetic-init") == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "--mimetic-init" in captured.err and captured.out == ""
    assert not (tmp_path / "continued").exists()


def test_separate_documents_is_checked_first_then_trains_mlm_and_electra(tmp_path, capsys):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(60))
    assert pretrain(tmp_path, corpus, "pairs", "--objective", "mlm+nsp", "--separate-documents", "--max-steps", "2") == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "--objective mlm or electra" in captured.err and captured.out == ""
    assert not (tmp_path / "pairs").exists()
    for objective in ("mlm", "electra"):
        assert pretrain(tmp_path, corpus, objective, "--objective", objective, "--separate-documents", "--max-steps", "3") == 0
        saved = json.loads((tmp_path / objective / "run.json").read_text())
        assert saved["data"]["separate_documents"] is True
        losses = [line["train/loss"] for line in metrics_lines(tmp_path / objective) if "train/loss" in line]
        assert losses and all(loss == loss and loss > 0 for loss in losses)


def test_embedding_init_cooccurrence_starts_seen_pieces_from_the_corpus_and_charges_the_budget(pretrained_run, tmp_path, capsys):
    from prefine.checkpoint import latest_checkpoint, load_weights

    def word_table(run_dir: Path) -> torch.Tensor:
        weights = load_weights(latest_checkpoint(run_dir))
        return next(value for name, value in weights.items() if name.endswith("embeddings.word_embeddings.weight")).float()

    assert json.loads((pretrained_run / "pre" / "run.json").read_text())["run"]["embedding_init"] == "random"
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(60))
    # A learning rate of 0 keeps the starting weights in the checkpoint.
    frozen = ("--max-steps", "1", "--learning-rate", "0", "--max-time", "10m")
    assert pretrain(tmp_path, corpus, "random", *frozen) == 0
    seen = {}
    for objective in ("mlm", "electra"):
        out = f"cooccurrence-{objective}"
        assert pretrain(tmp_path, corpus, out, "--objective", objective, *frozen, "--embedding-init", "cooccurrence") == 0
        saved = json.loads((tmp_path / out / "run.json").read_text())
        record = saved["embedding_init"]
        assert saved["run"]["embedding_init"] == "cooccurrence" and 0 < record["rows"] < record["vocab_size"]
        # The seconds the vectors took come off the 10-minute budget.
        assert saved["training"]["max_time"].endswith("s") and float(saved["training"]["max_time"][:-1]) <= 600 - record["seconds"] + 0.1
        norms = word_table(tmp_path / out).norm(dim=1)
        # Every seen piece starts at the norm a random row of the initialiser has on average.
        model = saved["model"]
        expected_norm = model["initializer_range"] * (model["embedding_size"] or model["hidden_size"]) ** 0.5
        seen[objective] = (norms - expected_norm).abs() < 1e-6
        assert int(seen[objective].sum()) == record["rows"]
    # A resumed run keeps the record and its budget: the seconds are not charged twice.
    before = json.loads((tmp_path / "cooccurrence-mlm" / "run.json").read_text())
    assert main(["pretrain", "--resume", str(tmp_path / "cooccurrence-mlm"), "--max-steps", "2"]) == 0
    resumed = json.loads((tmp_path / "cooccurrence-mlm" / "run.json").read_text())
    assert resumed["embedding_init"] == before["embedding_init"]
    assert resumed["training"]["max_time"] == before["training"]["max_time"]
    # The rest keep BERT's random start (same seed, same vocabulary size); seen rows differ from it.
    random_table, table, rows = word_table(tmp_path / "random"), word_table(tmp_path / "cooccurrence-mlm"), seen["mlm"]
    assert torch.equal(random_table[~rows], table[~rows]) and not torch.equal(random_table[rows], table[rows])
    assert random_table.norm(dim=1)[rows].std() > 1000 * table.norm(dim=1)[rows].std()  # random rows vary in norm
    capsys.readouterr()
    assert pretrain(tmp_path, corpus, "continued", "--init", str(pretrained_run / "pre"), "--embedding-init", "cooccurrence") == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "--embedding-init" in captured.err and captured.out == ""
    assert not (tmp_path / "continued").exists()
