"""The tiny pre-trained BERT and the training files the ONNX export and ONNX Runtime tests fine-tune every task from."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.conftest import write_tiny_bert_run
from tests.serve.conftest import squad

WORDS = "the cat sees a good bad house road in Paris Seoul today now quiet small tower".split()


def write_task_inputs(root: Path) -> Path:
    """A tiny BERT at root/tiny-bert (returned) and, beside it, labels.tsv, scores.tsv, train.conll, train.json, pairs.jsonl."""
    rng = random.Random(0)
    questions = squad(16, seed=1)
    contexts = [paragraph["context"] + " " + paragraph["qas"][0]["question"] for paragraph in questions["data"][0]["paragraphs"]]
    init = write_tiny_bert_run(root / "tiny-bert", WORDS * 3 + contexts, vocab_size=150)
    sentences = [" ".join(rng.choices(WORDS, k=rng.randint(2, 9))) for _ in range(32)]
    (root / "labels.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{'pos' if 'good' in s else 'neg'}\n" for s in sentences))
    (root / "scores.tsv").write_text("sentence\tscore\n" + "".join(f"{s}\t{len(s.split()) / 2}\n" for s in sentences))
    tagged = [("the cat sees Paris today", "O O O B-LOC O"), ("a good house in Seoul", "O O O O B-LOC")] * 8
    (root / "train.conll").write_text("".join("".join(f"{w}\t{t}\n" for w, t in zip(s.split(), tags.split())) + "\n" for s, tags in tagged))
    (root / "train.json").write_text(json.dumps(questions))
    pairs = [{"document": s, "summary": " ".join(s.split()[:2])} for s, _ in tagged]
    (root / "pairs.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    return init
