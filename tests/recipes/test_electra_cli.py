"""ELECTRA end to end: pretrain --objective electra, exact resume, fine-tune from the discriminator,
fill-mask with the generator, export, continued pre-training, compare --checkpoints, and flag errors."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from prefine.cli import main
from prefine.model import preset_config
from prefine.model.electra import ElectraObjectiveConfig, ElectraPreTrainingModel, generator_config
from prefine.objectives import electra as electra_objective
from prefine.objectives.electra import ElectraPretrainingTask
from prefine.pretraining_data import PretrainingBatches, PretrainingDataConfig
from prefine.recipes import pretrain as pretrain_recipe
from prefine.training import TrainingConfig, TrainingInterrupted, train
from tests.conftest import TINY_PRETRAIN_FLAGS as TINY
from tests.conftest import synthetic_documents, write_bert_text
from tests.recipes.test_cli_pretrain import sentiment_rows, write_sentiment
from tests.training.test_loop import CPU, InterruptingTask, train_losses


def make_electra_run(parts):
    tokenizer, shards = parts
    data = PretrainingDataConfig(max_seq_length=32, objective="electra")
    training = TrainingConfig(
        max_steps=10, batch_size=8, learning_rate=1e-3, log_every=1, eval_every=0, save_every=0, progress=False, seed=7
    )
    batches = PretrainingBatches.from_tokenizer(shards, tokenizer, data, seed=7, global_batch_size=8)
    torch.manual_seed(7)
    config = preset_config(
        "tiny",
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        max_position_embeddings=64,
    )
    objective = ElectraObjectiveConfig()
    model = ElectraPreTrainingModel(config, generator_config(config, 0.25), objective)  # dropout 0.1 and sampling both use the RNG
    return model, ElectraPretrainingTask(batches, batches.eval_batches(8), torch.device("cpu"), objective), training


def test_electra_resume_after_ctrl_c_equals_uninterrupted_training(pretraining_parts, tmp_path):  # noqa: F811
    model, task, training = make_electra_run(pretraining_parts)
    train(model, task, training, tmp_path / "straight", {}, CPU)
    expected = train_losses(tmp_path / "straight")

    model, task, training = make_electra_run(pretraining_parts)
    with pytest.raises(TrainingInterrupted):
        train(model, InterruptingTask(task, at_call=4), training, tmp_path / "resumed", {}, CPU)
    model, task, training = make_electra_run(pretraining_parts)
    train(model, task, training, tmp_path / "resumed", {}, CPU, resume=True)
    resumed = train_losses(tmp_path / "resumed")
    assert sorted(resumed) == list(range(1, 11))
    assert resumed == expected  # bit-identical: the replacement samples after the resume are the same


@pytest.fixture(scope="module")
def electra_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("electra")
    corpus = write_bert_text(root / "corpus.txt", synthetic_documents(120))
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("PREFINE_CACHE", str(root / "cache"))
        assert (
            main(
                [
                    "pretrain",
                    "--corpus",
                    str(corpus),
                    "--out",
                    str(root / "pre"),
                    "--registry",
                    str(root / "registry.sqlite"),
                    "--objective",
                    "electra",
                    "--generator-size",
                    "0.5",
                    *TINY,
                    "--max-steps",
                    "6",
                    "--eval-every",
                    "3",
                    "--save-every",
                    "3",
                    "--keep-last",
                    "5",
                ]
            )
            == 0
        )
    (root / "pretrain-stdout.txt").write_text(printed.getvalue())
    return root


def metrics_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_pretrain_electra_records_both_networks_and_logs_their_metrics(electra_run):
    run = electra_run / "pre"
    saved = json.loads((run / "run.json").read_text())
    assert saved["data"]["objective"] == "electra" and saved["electra"]["generator_size"] == 0.5
    assert saved["model"]["hidden_size"] == 128 and saved["generator"]["hidden_size"] == 64
    assert (
        saved["training"]["learning_rate"]
        == electra_objective.ELECTRA_LEARNING_RATE
        != pretrain_recipe.PRETRAIN_TRAINING_DEFAULTS.learning_rate
    )
    config = json.loads((run / "checkpoints" / "step-00000006" / "config.json").read_text())
    assert config["model_type"] == "electra" and config["generator"]["hidden_size"] == 64
    lines = metrics_lines(run)
    train_keys = {key for line in lines for key in line if key.startswith("train/")}
    assert {"train/mlm_accuracy", "train/discriminator_accuracy", "train/replaced_precision", "train/replaced_recall"} <= train_keys
    evals = [line for line in lines if "eval/discriminator_accuracy" in line]
    assert [line["step"] for line in evals] == [0, 3, 6]
    assert all(0 <= line["eval/replaced_recall"] <= 1 and 0 < line["eval/replaced_fraction"] < 0.3 for line in evals)
    assert all(0 <= line["eval/replaced_auc"] <= 1 for line in evals)


def test_an_electra_run_ends_by_reporting_its_discriminator_and_warns_while_it_is_in_its_first_phase(electra_run):
    printed = (electra_run / "pretrain-stdout.txt").read_text().splitlines()
    last = metrics_lines(electra_run / "pre")[-1]
    summary = [line for line in printed if line.startswith("held-out replaced-token detection")]
    assert summary == [
        f"held-out replaced-token detection: ROC AUC {last['eval/replaced_auc']:.2f} (0.50 is chance), "
        f"recall {last['eval/replaced_recall']:.1%}"
    ]
    # Six tiny steps leave the discriminator near chance (AUC 0.64 here), so a note says what that means and what to do.
    following = printed[printed.index(summary[0]) + 1 :]
    if last["eval/replaced_auc"] < electra_objective.FIRST_PHASE_AUC:
        assert following[0].startswith("note: the discriminator has barely started") and f"--resume {electra_run / 'pre'}" in following[0]
    else:
        assert not any(line.startswith("note:") for line in following)
    # A discriminator past that phase gets the summary alone; a masked-LM run has no discriminator lines.
    assert len(electra_objective.discriminator_summary({"replaced_auc": 0.9, "replaced_recall": 0.4}, Path("run"))) == 1
    assert electra_objective.discriminator_summary({"mlm_accuracy": 0.2}, Path("run")) == []


def test_finetune_starts_from_the_discriminator(electra_run, capsys):
    root = electra_run
    train_file = write_sentiment(root / "train.tsv", sentiment_rows(160, 1))
    test_file = write_sentiment(root / "test.tsv", sentiment_rows(60, 2))
    capsys.readouterr()
    assert (
        main(
            [
                "finetune",
                "--init",
                str(root / "pre"),
                "--train",
                str(train_file),
                "--eval",
                str(test_file),
                "--out",
                str(root / "sent"),
                "--text-column",
                "document",
                "--label-column",
                "label",
                "--max-steps",
                "40",
                "--learning-rate",
                "1e-3",
                "--batch-size",
                "16",
                "--eval-every",
                "40",
                "--no-eval-at-epoch-end",
                "--num-threads",
                "1",
                "--no-progress",
                "--registry",
                str(root / "registry.sqlite"),
            ]
        )
        == 0
    )
    announced = capsys.readouterr().out
    # Only the BERT pooler and the classifier are new: the encoder came from the discriminator.
    assert "init: prefine checkpoint" in announced and "pooler" in announced and "encoder" not in announced.split("new:")[1].splitlines()[0]
    assert 0.0 <= json.loads((root / "sent" / "eval_metrics.json").read_text())["accuracy"] <= 1.0

    # What every fine-tuning recipe loads: the discriminator's encoder tensors, not the generator's.
    from prefine.checkpoint import latest_checkpoint, load_weights
    from prefine.model import BertForSequenceClassification
    from prefine.recipes.common import load_initial_weights, resolve_init

    init = resolve_init(str(root / "pre"))
    classifier = BertForSequenceClassification(init.config, num_labels=2)
    load_initial_weights(classifier, init, from_scratch=False, announce=False)
    saved = load_weights(latest_checkpoint(root / "pre"))
    loaded = classifier.state_dict()
    encoder_names = [name for name in saved if name.startswith("electra.")]
    assert encoder_names and all(torch.equal(loaded["bert." + name[len("electra.") :]], saved[name]) for name in encoder_names)


def test_fill_mask_uses_the_generator_and_export_writes_both(electra_run):
    from prefine.model.electra import load_electra_state
    from prefine.recipes.common import resolve_init
    from prefine.recipes.fill_mask import fill_mask

    root = electra_run
    text = "the cat sees the [MASK] every morning"
    predictions = fill_mask(str(root / "pre"), text, top_k=3)
    init = resolve_init(str(root / "pre"))
    generator = ElectraPreTrainingModel(init.electra.config, init.electra.generator_config).eval()
    load_electra_state(generator, init.electra.state_dict)
    ids = torch.tensor([init.tokenizer.encode(text).ids])
    with torch.no_grad():
        probabilities = generator.generator_dense_logits(ids)[0, ids[0].tolist().index(init.tokenizer.token_to_id("[MASK]"))].softmax(-1)
    top = probabilities.topk(3)
    assert [token for token, _ in predictions[0]] == [init.tokenizer.id_to_token(int(index)) for index in top.indices]
    assert [probability for _, probability in predictions[0]] == pytest.approx(top.values.tolist())

    assert main(["export", str(root / "pre"), "--format", "hf", "--out", str(root / "hf")]) == 0
    assert (root / "hf" / "model.safetensors").exists() and (root / "hf" / "generator" / "model.safetensors").exists()


def test_continued_electra_pretraining_loads_both_networks(electra_run, capsys):
    root = electra_run
    capsys.readouterr()
    assert (
        main(
            [
                "pretrain",
                "--corpus",
                str(root / "corpus.txt"),
                "--out",
                str(root / "more"),
                "--registry",
                str(root / "registry.sqlite"),
                "--init",
                str(root / "pre"),
                "--objective",
                "electra",
                "--max-seq-length",
                "32",
                "--batch-size",
                "8",
                "--num-threads",
                "1",
                "--no-progress",
                "--max-steps",
                "2",
                "--eval-every",
                "0",
            ]
        )
        == 0
    )
    assert "newly initialized" not in capsys.readouterr().out
    assert json.loads((root / "more" / "run.json").read_text())["generator"]["hidden_size"] == 64  # the --init's generator, not 0.25's
    # From a BERT-style (MLM) start the generator is new, and says so.
    assert (
        main(
            [
                "pretrain",
                "--corpus",
                str(root / "corpus.txt"),
                "--out",
                str(root / "from-bert"),
                "--registry",
                str(root / "registry.sqlite"),
                "--init",
                str(root / "hf"),
                "--objective",
                "mlm",
                "--max-seq-length",
                "32",
                "--batch-size",
                "8",
                "--num-threads",
                "1",
                "--no-progress",
                "--max-steps",
                "1",
                "--eval-every",
                "0",
            ]
        )
        == 0
    )
    assert "cls.predictions" in capsys.readouterr().out  # an ELECTRA discriminator has no MLM head: it starts fresh


def test_resume_continues_and_refuses_objective_changes(electra_run, capsys):
    run = electra_run / "pre"
    assert main(["pretrain", "--resume", str(run), "--generator-size", "0.25"]) == 2
    assert "--generator-size" in capsys.readouterr().err
    assert main(["pretrain", "--resume", str(run), "--max-steps", "8", "--eval-every", "0"]) == 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000008"


def test_electra_flags_without_the_objective_are_refused_before_any_work(tmp_path, capsys):
    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(20))
    assert (
        main(["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--objective", "mlm", "--generator-size", "0.5", *TINY])
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--generator-size" in error and "--objective electra" in error
    assert not (tmp_path / "run").exists()
    assert (
        main(
            ["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--objective", "electra", "--generator-size", "2", *TINY]
        )
        == 2
    )
    assert "--generator-size 2.0 must be in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_compare_checkpoints_works_on_an_electra_run(electra_run, tmp_path):
    root = electra_run
    write_sentiment(tmp_path / "train.tsv", sentiment_rows(24, 3))
    write_sentiment(tmp_path / "test.tsv", sentiment_rows(16, 4))
    out = tmp_path / "curve"
    assert (
        main(
            [
                "compare",
                "--init",
                str(root / "pre"),
                "--train",
                str(tmp_path / "train.tsv"),
                "--eval",
                str(tmp_path / "test.tsv"),
                "--out",
                str(out),
                "--registry",
                str(tmp_path / "registry.sqlite"),
                "--checkpoints",
                "3,6",
                "--fractions",
                "1.0",
                "--text-column",
                "document",
                "--label-column",
                "label",
                "--max-steps",
                "2",
                "--batch-size",
                "8",
                "--max-seq-length",
                "32",
                "--num-threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )


def test_electra_under_torchrun_trains_saves_once_and_resumes(tmp_path):
    from tests.training.test_distributed import torchrun

    corpus = write_bert_text(tmp_path / "corpus.txt", synthetic_documents(120, seed=2))
    run_dir = tmp_path / "run"
    flags = [
        "--preset",
        "tiny",
        "--vocab-size",
        "200",
        "--min-frequency",
        "1",
        "--max-seq-length",
        "32",
        "--batch-size",
        "8",
        "--eval-every",
        "2",
        "--save-every",
        "2",
        "--log-every",
        "1",
        "--no-progress",
        "--objective",
        "electra",
    ]
    result = torchrun(
        "-m",
        "prefine",
        "pretrain",
        "--corpus",
        str(corpus),
        "--out",
        str(run_dir),
        "--registry",
        str(tmp_path / "r.sqlite"),
        *flags,
        "--max-steps",
        "2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("global batch 8 = 4 per process x 2 processes") == 1 and result.stdout.count("done: 2 steps") == 1
    resumed = torchrun("-m", "prefine", "pretrain", "--resume", str(run_dir), "--registry", str(tmp_path / "r.sqlite"), "--max-steps", "4")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lines = metrics_lines(run_dir)
    assert [line["step"] for line in lines if "train/loss" in line] == [1, 2, 3, 4]
    assert all(0.0 <= line["train/discriminator_accuracy"] <= 1.0 for line in lines if "train/loss" in line)


def test_an_electra_small_layout_fine_tunes_continues_pretraining_and_refuses_what_cannot_hold_it(electra_run, capsys):
    """Google's ELECTRA-Small (and KoELECTRA-Small) embed at 128 and project up to 256: a Hugging Face
    folder of that layout works as --init, and the recipes that cannot carry the projection refuse it."""
    transformers = pytest.importorskip("transformers")
    from prefine.tokenizer import load_tokenizer, save_tokenizer

    root = electra_run
    tokenizer = load_tokenizer(root / "pre" / "tokenizer")
    small = root / "electra-small"
    config = transformers.ElectraConfig(
        vocab_size=tokenizer.get_vocab_size(),
        embedding_size=32,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.ElectraForPreTraining(config).save_pretrained(small)
    save_tokenizer(tokenizer, small)
    registry = ["--registry", str(root / "registry.sqlite")]
    quiet = ["--num-threads", "1", "--no-progress"]

    train_file = write_sentiment(root / "train-small.tsv", sentiment_rows(64, 3))
    assert (
        main(
            [
                "finetune",
                "--init",
                str(small),
                "--train",
                str(train_file),
                "--eval",
                str(train_file),
                "--out",
                str(root / "sent-small"),
                "--text-column",
                "document",
                "--label-column",
                "label",
                "--max-seq-length",
                "32",
                "--max-steps",
                "4",
                "--batch-size",
                "16",
                *quiet,
                *registry,
            ]
        )
        == 0
    )
    from prefine.checkpoint import latest_checkpoint

    saved = json.loads((latest_checkpoint(root / "sent-small") / "config.json").read_text())
    assert saved["embedding_size"] == 32 and saved["hidden_size"] == 64
    assert main(["evaluate", str(root / "sent-small"), "--data", str(train_file)]) == 0
    capsys.readouterr()
    assert main(["predict", str(root / "sent-small"), "--data", str(train_file)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 64

    refused = [
        # transformers' BERT classes have no embeddings_project
        (
            ["export", str(root / "sent-small"), "--format", "hf", "--out", str(root / "sent-small-hf")],
            root / "sent-small-hf",
            "BERT classes cannot hold",
        ),
        # BERT's masked-LM head reads hidden_size-wide states against the 32-wide table
        (
            [
                "pretrain",
                "--corpus",
                str(root / "corpus.txt"),
                "--out",
                str(root / "small-mlm"),
                "--init",
                str(small),
                "--objective",
                "mlm",
                "--max-steps",
                "1",
                *quiet,
                *registry,
            ],
            root / "small-mlm",
            "continue it with --objective electra",
        ),
        # the decoder warm-started from the encoder cannot hold the projection either
        (
            [
                "finetune",
                "--task",
                "generation",
                "--init",
                str(small),
                "--train",
                str(train_file),
                "--out",
                str(root / "small-gen"),
                "--source-column",
                "document",
                "--target-column",
                "label",
                "--max-source-length",
                "64",
                "--max-target-length",
                "16",
                "--max-steps",
                "1",
                *quiet,
                *registry,
            ],
            root / "small-gen",
            "--task generation",
        ),
    ]
    for argv, out, reason in refused:
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert reason in captured.err and len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
        assert not out.exists()

    # Continued ELECTRA pre-training keeps the layout; its export loads back into transformers with it.
    assert (
        main(
            [
                "pretrain",
                "--corpus",
                str(root / "corpus.txt"),
                "--out",
                str(root / "small-more"),
                "--init",
                str(small),
                "--objective",
                "electra",
                "--max-seq-length",
                "32",
                "--batch-size",
                "8",
                "--max-steps",
                "2",
                "--eval-every",
                "0",
                *quiet,
                *registry,
            ]
        )
        == 0
    )
    assert main(["export", str(root / "small-more"), "--format", "hf", "--out", str(root / "small-more-hf")]) == 0
    exported = transformers.AutoModelForPreTraining.from_pretrained(root / "small-more-hf")
    assert exported.config.embedding_size == 32 and exported.electra.embeddings_project.in_features == 32
    # A classifier fine-tuned from it starts ELECTRA pre-training with its projection too (a fresh generator).
    assert (
        main(
            [
                "pretrain",
                "--corpus",
                str(root / "corpus.txt"),
                "--out",
                str(root / "small-again"),
                "--init",
                str(root / "sent-small"),
                "--objective",
                "electra",
                "--max-seq-length",
                "32",
                "--batch-size",
                "8",
                "--max-steps",
                "1",
                "--eval-every",
                "0",
                *quiet,
                *registry,
            ]
        )
        == 0
    )
    assert "embeddings_project" not in capsys.readouterr().out.split("newly initialized:")[-1]
