"""Tiny copies of the official GLUE and KLUE v1.1 files, in their real layouts and formats, for `prefine suite` tests.

Each file holds 12-24 learnable rows (a label word among filler words the tiny test tokenizer
knows), written exactly as the official distribution writes it: GLUE's TSV folders with their
real headers (CoLA without one, MNLI's two dev files), KLUE's JSON arrays with nested objects
(STS's labels, RE's entities, MRC's SQuAD-style paragraphs) and its character-per-line NER TSV.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

FILLER = ["the", "cat", "sees", "a", "house", "river", "after", "school", "with", "care"]
KOREAN_FILLER = ["오늘", "영화", "정말", "서울", "학교", "뉴스", "경제", "정부", "발표", "선수"]
KOREAN_CORPUS = [
    "오늘 서울 학교 뉴스 발표 정말 좋은 영화.",
    "경제 정부 발표 선수 오늘 서울 영화 정말.",
    "한국 영화 선수 학교 정부 경제 뉴스 오늘.",
    "삼성 서울 강릉 방향 고속도로 정부 발표.",
]


def _sentence(rng: random.Random, word: str, filler: list[str] = FILLER) -> str:
    words = rng.choices(filler, k=rng.randint(3, 6)) + [word]
    rng.shuffle(words)
    return " ".join(words)


def _tsv(path: Path, header: list[str] | None, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _binary(rng: random.Random, count: int) -> list[tuple[int, str]]:
    """(label, sentence) with 'good' for 1 and 'bad' for 0, both labels present."""
    labels = [index % 2 for index in range(count)]
    rng.shuffle(labels)
    return [(label, _sentence(rng, "good" if label else "bad")) for label in labels]


def write_glue(root: Path, rows: int = 16, seed: int = 0) -> Path:
    """Every GLUE task as download_glue_data.py lays it out under `root`."""
    rng = random.Random(seed)
    for split in ("train", "dev"):
        count = rows if split == "train" else rows // 2
        _tsv(
            root / "CoLA" / f"{split}.tsv", None, [[f"gj0{i}", str(y), "" if y else "*", s] for i, (y, s) in enumerate(_binary(rng, count))]
        )
        _tsv(root / "SST-2" / f"{split}.tsv", ["sentence", "label"], [[s, str(y)] for y, s in _binary(rng, count)])
        _tsv(
            root / "MRPC" / f"{split}.tsv",
            ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
            [[str(y), str(i), str(i + 1), s, _sentence(rng, "good" if y else "bad")] for i, (y, s) in enumerate(_binary(rng, count))],
        )
        _tsv(
            root / "QQP" / f"{split}.tsv",
            ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
            [[str(i), str(2 * i), str(2 * i + 1), s, _sentence(rng, "good"), str(y)] for i, (y, s) in enumerate(_binary(rng, count))],
        )
        _tsv(
            root / "STS-B" / f"{split}.tsv",
            ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"],
            [
                [
                    str(i),
                    "main-captions",
                    "MSRvid",
                    "2012test",
                    str(i),
                    "none",
                    "none",
                    s,
                    _sentence(rng, "good"),
                    f"{y * 4 + rng.random():.3f}",
                ]
                for i, (y, s) in enumerate(_binary(rng, count))
            ],
        )
        nli = ["entailment", "neutral", "contradiction"]
        for name in ["train"] if split == "train" else ["dev_matched", "dev_mismatched"]:
            header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse"]
            header += ["sentence2_parse", "sentence1", "sentence2", "label1"] + (
                ["label2", "label3", "label4", "label5"] if split == "dev" else []
            )
            header += ["gold_label"]
            body = []
            for i in range(count):
                label = nli[i % 3]
                word = {"entailment": "good", "neutral": "house", "contradiction": "bad"}[label]
                votes = [label] * (5 if split == "dev" else 1)
                body.append(
                    [str(i), str(i), f"{i}e", "fiction", "( a )", "( b )", "(ROOT a)", "(ROOT b)", _sentence(rng, word), "a cat"]
                    + votes
                    + [label]
                )
            _tsv(root / "MNLI" / f"{name}.tsv", header, body)
        pairs = [(("entailment" if y else "not_entailment"), s) for y, s in _binary(rng, count)]
        _tsv(
            root / "QNLI" / f"{split}.tsv",
            ["index", "question", "sentence", "label"],
            [[str(i), "what does the cat see", s, y] for i, (y, s) in enumerate(pairs)],
        )
        _tsv(
            root / "RTE" / f"{split}.tsv",
            ["index", "sentence1", "sentence2", "label"],
            [[str(i), s, "a cat", y] for i, (y, s) in enumerate(pairs)],
        )
        _tsv(
            root / "WNLI" / f"{split}.tsv",
            ["index", "sentence1", "sentence2", "label"],
            [[str(i), s, "a cat", str(y)] for i, (y, s) in enumerate(_binary(rng, count))],
        )
    return root


def _json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")


def write_klue(root: Path, rows: int = 16, seed: int = 0) -> Path:
    """YNAT, STS, NLI, NER, RE and MRC as klue_benchmark/ of the KLUE repository lays them out under `root`."""
    rng = random.Random(seed)
    topics = {"경제": "경제", "정치": "정부", "스포츠": "선수"}
    for split in ("train", "dev"):
        count = rows if split == "train" else rows // 2
        names = list(topics)
        _json(
            root / "ynat-v1.1" / f"ynat-v1.1_{split}.json",
            [
                {
                    "guid": f"ynat-v1_{split}_{i:05d}",
                    "title": _sentence(rng, topics[names[i % 3]], KOREAN_FILLER),
                    "predefined_news_category": names[i % 3],
                    "label": names[i % 3],
                    "annotations": {"annotators": ["07", "13"], "annotations": {"first-scope": [names[i % 3]]}},
                    "url": "https://news.example/1",
                    "date": "2016.06.30. 오전 10:36",
                }
                for i in range(count)
            ],
        )
        sts = []
        for i in range(count):
            score = round(rng.uniform(0, 5), 1)
            sts.append(
                {
                    "guid": f"klue-sts-v1_{split}_{i:05d}",
                    "source": "airbnb-rtt",
                    "sentence1": _sentence(rng, "정말" if score >= 3 else "뉴스", KOREAN_FILLER),
                    "sentence2": _sentence(rng, "영화", KOREAN_FILLER),
                    "labels": {"label": score, "real-label": score + 0.014, "binary-label": int(score >= 3)},
                    "annotations": {"agreement": "0:0:0:2:5:0", "annotators": ["07"], "annotation": [3, 4]},
                }
            )
        _json(root / "klue-sts-v1.1" / f"klue-sts-v1.1_{split}.json", sts)
        nli = ["entailment", "neutral", "contradiction"]
        _json(
            root / "klue-nli-v1.1" / f"klue-nli-v1.1_{split}.json",
            [
                {
                    "guid": f"klue-nli-v1_{split}_{i:05d}",
                    "source": "NSMC",
                    "premise": _sentence(rng, ["정말", "서울", "발표"][i % 3], KOREAN_FILLER),
                    "hypothesis": "오늘 영화",
                    "gold_label": nli[i % 3],
                    "author": "entailment",
                    "label_info": {"contradiction": 0, "entailment": 1, "neutral": 4},
                }
                for i in range(count)
            ],
        )
        ner_lines = []
        for i in range(count):
            entity, kind = (("서울", "LC"), ("삼성", "OG"), ("오늘", "DT"))[i % 3]
            before, after = rng.choice(KOREAN_FILLER), rng.choice(KOREAN_FILLER)
            text = f"{before} {entity} {after}"
            ner_lines.append(f"## klue-ner-v1_{split}_{i:05d}_nsmc\t{before} <{entity}:{kind}> {after}")
            tags = ["O"] * (len(before) + 1) + [f"B-{kind}"] + [f"I-{kind}"] * (len(entity) - 1) + ["O"] * (len(after) + 1)
            ner_lines += [f"{char}\t{tag}" for char, tag in zip(text, tags)] + [""]
        path = root / "klue-ner-v1.1" / f"klue-ner-v1.1_{split}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(ner_lines) + "\n", encoding="utf-8")
        relations = []
        for i in range(count):
            label = ["no_relation", "org:member_of", "per:origin"][i % 3]
            subject, obj = "삼성", ["서울", "정부", "한국"][i % 3]
            sentence = f"{subject} {rng.choice(KOREAN_FILLER)} {obj} {rng.choice(KOREAN_FILLER)}"
            start = sentence.index(obj, len(subject))
            relations.append(
                {
                    "guid": f"klue-re-v1_{split}_{i:05d}",
                    "sentence": sentence,
                    "subject_entity": {"word": subject, "start_idx": 0, "end_idx": len(subject) - 1, "type": "ORG"},
                    "object_entity": {"word": obj, "start_idx": start, "end_idx": start + len(obj) - 1, "type": "LOC"},
                    "label": label,
                    "source": "wikipedia",
                }
            )
        _json(root / "klue-re-v1.1" / f"klue-re-v1.1_{split}.json", relations)
        articles = []
        for i in range(count):
            answer = rng.choice(["서울", "정부", "선수"])
            context = f"{rng.choice(KOREAN_FILLER)} 오늘 {answer} 발표 {rng.choice(KOREAN_FILLER)}."
            qa = {
                "question": f"오늘 무엇 발표 {i}",
                "answers": [{"text": answer, "answer_start": context.index(answer)}],
                "question_type": 1,
                "guid": f"klue-mrc-v1_{split}_{i:05d}",
                "is_impossible": False,
            }
            articles.append(
                {"title": "뉴스", "paragraphs": [{"context": context, "qas": [qa]}], "news_category": "경제", "source": "hankyung"}
            )
        _json(root / "klue-mrc-v1.1" / f"klue-mrc-v1.1_{split}.json", {"version": "v1.1", "data": articles})
    return root
