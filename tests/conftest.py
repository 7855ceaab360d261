"""Fixtures shared across the test suite: a small synthetic corpus, a tokenizer and shards built from one, and environment isolation."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

# The flags every CLI test's tiny pre-training run shares: a few hundred pieces, short rows, one thread.
TINY_PRETRAIN_FLAGS = [
    "--preset",
    "tiny",
    "--vocab-size",
    "300",
    "--min-frequency",
    "1",
    "--max-seq-length",
    "32",
    "--batch-size",
    "8",
    "--num-threads",
    "1",
    "--no-progress",
]

SUBJECTS = ["the cat", "a dog", "my friend", "the teacher", "our team", "the old man", "a small bird", "the river"]
VERBS = ["sees", "likes", "finds", "follows", "watches", "helps", "remembers", "builds"]
OBJECTS = ["the garden", "a red ball", "the new house", "an open door", "the quiet lake", "a long road", "the bright moon"]
ENDINGS = ["every morning", "at night", "after school", "in the rain", "with great care", "once again"]


def synthetic_documents(count: int, seed: int = 0) -> list[list[str]]:
    """Documents of 2-8 simple sentences; deterministic, so tests can assert on them."""
    rng = random.Random(seed)
    documents = []
    for _ in range(count):
        documents.append(
            [
                f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(ENDINGS)}."
                for _ in range(rng.randint(2, 8))
            ]
        )
    return documents


def write_bert_text(path: Path, documents: list[list[str]]) -> Path:
    path.write_text("".join("\n".join(document) + "\n\n" for document in documents), encoding="utf-8")
    return path


def dead_pid() -> int:
    """A pid that names no process now, as a writer killed with kill -9 leaves in its partial file's name."""
    import subprocess

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


@pytest.fixture(autouse=True)
def pytorch_threads_restored():
    """`--backend onnx` hands PyTorch's threads to ONNX Runtime for the rest of a process; one test's handover must not reach the next."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    onnx_runtime = sys.modules.get("prefine.interop.onnx_runtime")
    if onnx_runtime is not None:
        onnx_runtime._threads_before_handover = None


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    return write_bert_text(tmp_path / "corpus.txt", synthetic_documents(120))


@pytest.fixture(scope="module")
def pretraining_parts(tmp_path_factory: pytest.TempPathFactory):
    """A tokenizer and token shards over a small synthetic corpus, for training-loop tests in several folders."""
    from prefine.pretraining_data import build_token_shards
    from prefine.tokenizer import TokenizerConfig, train_tokenizer

    documents = synthetic_documents(150, seed=3)
    tokenizer = train_tokenizer(
        (sentence for document in documents for sentence in document), TokenizerConfig(vocab_size=300, min_frequency=1), show_progress=False
    )
    shards = build_token_shards(documents, tokenizer, tmp_path_factory.mktemp("shards") / "shards")
    return tokenizer, shards


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Caches and the registry default to the user's home; tests must never touch it.
    monkeypatch.setenv("PREFINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PREFINE_REGISTRY", raising=False)


def write_tiny_bert_run(run_dir: Path, texts: list[str], vocab_size: int = 300, seed: int = 0, max_positions: int = 64) -> Path:
    """A tiny random BERT as a `prefine pretrain` run folder holds it (tokenizer/, checkpoints/, run.json), to fine-tune from."""
    import dataclasses

    import torch

    from prefine.checkpoint import save_checkpoint, write_run
    from prefine.model import BertConfig, BertForPreTraining
    from prefine.tokenizer import TokenizerConfig, save_tokenizer, tokenizer_fingerprint, train_tokenizer

    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=vocab_size, min_frequency=1), show_progress=False)
    save_tokenizer(tokenizer, run_dir / "tokenizer")
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
    )
    torch.manual_seed(seed)
    checkpoint_config = {
        **dataclasses.asdict(config),
        "model_type": "bert",
        "architectures": ["BertForPreTraining"],
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
    }
    write_run(run_dir, {"kind": "pretrain", "model": dataclasses.asdict(config)})
    save_checkpoint(run_dir, 1, BertForPreTraining(config).state_dict(), checkpoint_config, trainer_state=None, keep_last=1)
    return run_dir


REVIEW_POSITIVE = ["good", "great", "fine", "lovely", "superb"]
REVIEW_NEGATIVE = ["bad", "awful", "poor", "dull", "boring"]
REVIEW_FILLER = ["the", "movie", "was", "really", "plot", "acting", "very"]


def write_review_tsv(path: Path, count: int, seed: int) -> Path:
    """A learnable sentiment TSV (sentence, label): each review holds one positive or negative word among filler."""
    rng = random.Random(seed)
    lines = ["sentence\tlabel"]
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.choices(REVIEW_FILLER, k=rng.randint(2, 6)) + [rng.choice(REVIEW_POSITIVE if label else REVIEW_NEGATIVE)]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)}\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
