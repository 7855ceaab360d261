"""Korean end to end through the CLI: pre-train, fill-mask, fine-tune on a Korean TSV, predict."""

from __future__ import annotations

import json
import random
from pathlib import Path

from prefine.cli import main
from prefine.tokenizer import load_tokenizer

SUBJECTS = ["이 영화는", "그 배우는", "우리 가족은", "주인공은", "감독은", "음악은"]
PRAISE = ["정말 재미있어요.", "너무 감동적이었다.", "최고의 작품이다.", "다시 보고 싶어요."]
BLAME = ["정말 지루했어요.", "너무 실망스러웠다.", "최악의 작품이다.", "시간이 아까워요."]


def korean_review(rng: random.Random, positive: bool) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(PRAISE if positive else BLAME)}"


def test_korean_pretrain_fill_mask_and_sentiment(tmp_path, capsys):
    rng = random.Random(0)
    documents = ["\n".join(korean_review(rng, rng.random() < 0.5) for _ in range(rng.randint(2, 5))) for _ in range(150)]
    corpus = tmp_path / "reviews.txt"
    corpus.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    common = ["--registry", str(tmp_path / "registry.sqlite"), "--num-threads", "1", "--no-progress"]
    assert (
        main(
            [
                "pretrain",
                "--corpus",
                str(corpus),
                "--out",
                str(tmp_path / "ko"),
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
                "--max-steps",
                "4",
                *common,
            ]
        )
        == 0
    )

    tokenizer = load_tokenizer(tmp_path / "ko" / "tokenizer")
    tokens = tokenizer.encode("이 영화는 정말 재미있어요").tokens
    assert "[UNK]" not in tokens
    assert not any("\u1100" <= character <= "\u11ff" for token in tokens for character in token)  # no conjoining jamo

    capsys.readouterr()
    assert main(["fill-mask", str(tmp_path / "ko"), "이 영화는 정말 [MASK]"]) == 0
    assert capsys.readouterr().out.startswith("[MASK] 1:")

    def write(path: Path, count: int, seed: int) -> Path:
        local = random.Random(seed)
        rows = []
        for _ in range(count):
            positive = local.random() < 0.5
            rows.append(f"{korean_review(local, positive)}\t{'긍정' if positive else '부정'}")
        path.write_text("document\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
        return path

    train, test = write(tmp_path / "train.tsv", 160, 1), write(tmp_path / "test.tsv", 40, 2)
    assert (
        main(
            [
                "finetune",
                "--init",
                str(tmp_path / "ko"),
                "--train",
                str(train),
                "--eval",
                str(test),
                "--out",
                str(tmp_path / "ko-sent"),
                "--max-steps",
                "60",
                "--batch-size",
                "16",
                "--learning-rate",
                "1e-3",
                "--eval-every",
                "30",
                *common,
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "ko-sent" / "eval_metrics.json").read_text())["accuracy"] >= 0.9

    capsys.readouterr()
    assert main(["predict", str(tmp_path / "ko-sent"), "--data", str(test)]) == 0
    predictions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = [line.split("\t") for line in test.read_text(encoding="utf-8").splitlines()[1:]]
    assert [p["text"] for p in predictions] == [text for text, _ in expected]  # input order, Hangul intact
    assert sum(p["label"] == label for p, (_, label) in zip(predictions, expected)) >= 36
