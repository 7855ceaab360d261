"""The built-in generation task (docstring body -> summary): its splits, and a CLI run on it end to end."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from prefine.checkpoint import save_checkpoint, write_run
from prefine.cli import main
from prefine.corpus.builtin import _stdlib_sources, builtin_pretraining_documents
from prefine.corpus.builtin_generation import builtin_generation_task, is_test_module, module_of, write_builtin_generation_task
from prefine.model import BertConfig, BertForPreTraining
from prefine.tokenizer import TokenizerConfig, save_tokenizer, tokenizer_fingerprint, train_tokenizer

pytest.importorskip("sacrebleu")


@pytest.fixture(scope="module")
def task():
    return builtin_generation_task()


def test_pairs_are_pep257_summaries_of_their_bodies(task):
    train, test = task
    assert len(train) > 1000 and len(test) > 80
    for record in train[:200] + test:
        assert 3 <= len(record["summary"].split()) <= 20 and len(record["document"].split()) >= 8
        assert "\n" not in record["summary"]


def test_test_modules_are_unseen_in_training_and_test_pairs_unseen_in_pretraining(task):
    train, test = task
    modules = frozenset(".".join(parts) for _, parts in _stdlib_sources())
    train_modules = {module_of(record["name"], modules) for record in train}
    test_modules = {module_of(record["name"], modules) for record in test}
    assert not train_modules & test_modules
    assert all(is_test_module(module) for module in test_modules)
    pretraining_text = "\n".join(" ".join(document) for document in builtin_pretraining_documents())
    leaked = [record for record in test if record["summary"] in pretraining_text and record["document"][:60] in pretraining_text]
    assert not leaked


def test_finetune_and_evaluate_on_the_builtin_task(tmp_path, capsys):
    train_path, test_path = write_builtin_generation_task(tmp_path / "task", max_train=160, max_test=24)
    texts = []
    for path in (train_path, test_path):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            texts += [record["document"], record["summary"]]
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=800, min_frequency=1), show_progress=False)
    init = tmp_path / "init"
    save_tokenizer(tokenizer, init / "tokenizer")
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    checkpoint_config = {
        **dataclasses.asdict(config),
        "model_type": "bert",
        "architectures": ["BertForPreTraining"],
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
    }
    write_run(init, {"kind": "pretrain", "model": dataclasses.asdict(config)})
    save_checkpoint(init, 1, BertForPreTraining(config).state_dict(), checkpoint_config, trainer_state=None, keep_last=1)
    out = tmp_path / "run"
    code = main(
        [
            "finetune",
            "--task",
            "generation",
            "--init",
            str(init),
            "--train",
            str(train_path),
            "--eval",
            str(test_path),
            "--out",
            str(out),
            "--max-steps",
            "30",
            "--batch-size",
            "16",
            "--learning-rate",
            "3e-3",
            "--num-threads",
            "1",
            "--no-progress",
            "--max-source-length",
            "96",
            "--max-target-length",
            "24",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "160 pairs; columns: source=document, target=summary" in captured.out
    assert "reach --max-source-length 96" in captured.err  # long docstrings are truncated, and said so once
    assert main(["evaluate", str(out), "--data", str(test_path)]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["examples"] == 24 and scores["rouge1"] > 0 and scores["loss"] < 7.0
