"""`--morphemes kiwi` end to end through the CLI: pre-train, fill-mask, fine-tune and predict see the
same morpheme pieces; export refuses in one line; a missing kiwipiepy stops pre-training before any work,
and the option is refused with a reused tokenizer that does not cut morphemes."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from prefine.cli import main
from prefine.tokenizer import TokenizerConfig, load_tokenizer, morpheme_analyser, save_tokenizer, tokenizer_fingerprint, train_tokenizer
from tests.conftest import TINY_PRETRAIN_FLAGS
from tests.recipes.test_cli_korean import korean_review


def write_reviews(path: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        positive = rng.random() < 0.5
        rows.append(f"{korean_review(rng, positive)}\t{'긍정' if positive else '부정'}")
    path.write_text("document\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def morpheme_runs(tmp_path_factory):
    """A tiny pre-trained with --morphemes kiwi on Korean reviews, and a sentiment fine-tune of it."""
    root = tmp_path_factory.mktemp("morphemes")
    rng = random.Random(0)
    documents = ["\n".join(korean_review(rng, rng.random() < 0.5) for _ in range(rng.randint(2, 5))) for _ in range(150)]
    corpus = root / "reviews.txt"
    corpus.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    common = ["--registry", str(root / "registry.sqlite")]
    pretrain = ["pretrain", "--corpus", str(corpus), "--out", str(root / "ko"), *TINY_PRETRAIN_FLAGS, "--max-steps", "4", *common]
    assert main([*pretrain, "--morphemes", "kiwi"]) == 0
    train, test = write_reviews(root / "train.tsv", 160, 1), write_reviews(root / "test.tsv", 40, 2)
    finetune = ["finetune", "--init", str(root / "ko"), "--train", str(train), "--eval", str(test), "--out", str(root / "ko-sent")]
    flags = ["--max-steps", "60", "--batch-size", "16", "--learning-rate", "1e-3", "--eval-every", "30", "--num-threads", "1"]
    assert main([*finetune, *flags, "--no-progress", *common]) == 0
    return root


def test_pretraining_fine_tuning_and_prediction_see_the_same_morpheme_pieces(morpheme_runs, capsys):
    root = morpheme_runs
    pretrained, finetuned = load_tokenizer(root / "ko" / "tokenizer"), load_tokenizer(root / "ko-sent" / "tokenizer")
    assert morpheme_analyser(pretrained) == morpheme_analyser(finetuned) == "kiwi"
    assert tokenizer_fingerprint(pretrained) == tokenizer_fingerprint(finetuned)
    assert json.loads((root / "ko" / "run.json").read_text(encoding="utf-8"))["tokenizer"]["morphemes"] == "kiwi"
    tokens = pretrained.encode("이 영화는 정말 재미있어요").tokens
    assert "##는" in tokens and "[UNK]" not in tokens  # 영화 + ##는: the particle is its own continuation piece

    capsys.readouterr()
    assert main(["fill-mask", str(root / "ko"), "이 영화는 정말 [MASK]"]) == 0
    assert capsys.readouterr().out.startswith("[MASK] 1:")

    test = root / "test.tsv"
    assert main(["predict", str(root / "ko-sent"), "--data", str(test)]) == 0
    predictions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = [line.split("\t") for line in test.read_text(encoding="utf-8").splitlines()[1:]]
    assert [p["text"] for p in predictions] == [text for text, _ in expected]
    assert sum(p["label"] == label for p, (_, label) in zip(predictions, expected)) >= 36


@pytest.mark.parametrize("run, form", [("ko", "hf"), ("ko-sent", "hf"), ("ko-sent", "onnx")])
def test_export_refuses_a_morpheme_tokenizer_in_one_line(morpheme_runs, run, form, capsys):
    out = morpheme_runs / f"export-{run}-{form}"
    capsys.readouterr()
    assert main(["export", str(morpheme_runs / run), "--format", form, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("prefine: error:"), error
    assert "morphemes with kiwi" in error and "tokenizer.json cannot express" in error and "prefine predict" in error
    assert not out.exists()


def test_a_missing_kiwipiepy_stops_pretraining_before_any_work(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "reviews.txt"
    corpus.write_text("이 영화는 정말 재미있어요.\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)
    out = tmp_path / "run"
    arguments = ["pretrain", "--corpus", str(corpus), "--out", str(out), *TINY_PRETRAIN_FLAGS, "--max-steps", "2"]
    assert main([*arguments, "--morphemes", "kiwi", "--registry", str(tmp_path / "registry.sqlite")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "pip install 'prefine[korean]'" in captured.err, captured.err
    assert not out.exists()


def test_morphemes_with_a_reused_tokenizer_that_cuts_none_is_refused(tmp_path, capsys):
    corpus = tmp_path / "reviews.txt"
    rng = random.Random(3)
    corpus.write_text("\n".join(korean_review(rng, rng.random() < 0.5) for _ in range(60)) + "\n", encoding="utf-8")
    plain = train_tokenizer(
        corpus.read_text(encoding="utf-8").splitlines(), TokenizerConfig(vocab_size=300, min_frequency=1), show_progress=False
    )
    save_tokenizer(plain, tmp_path / "plain-tokenizer")
    out = tmp_path / "run"
    arguments = ["pretrain", "--corpus", str(corpus), "--out", str(out), *TINY_PRETRAIN_FLAGS, "--max-steps", "2"]
    arguments += ["--tokenizer", str(tmp_path / "plain-tokenizer"), "--registry", str(tmp_path / "registry.sqlite")]
    assert main([*arguments, "--morphemes", "kiwi"]) == 2
    captured = capsys.readouterr()
    error = captured.err
    assert error.count("\n") == 1 and "--morphemes kiwi applies to a tokenizer prefine trains" in error, error
    assert "tokenizer:" not in captured.out  # nothing says work started before the refusal
    assert not out.exists()
