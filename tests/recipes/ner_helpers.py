"""Synthetic, learnable tagged data for the token-classification tests, in each file format prefine reads."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import torch

from prefine.checkpoint import save_checkpoint, write_run
from prefine.model import BertConfig, BertForPreTraining
from prefine.tokenizer import TokenizerConfig, save_tokenizer, tokenizer_fingerprint, train_tokenizer

PEOPLE = [["John"], ["Mary", "Smith"], ["Alice"], ["Bob", "Stone"], ["Carol", "King"], ["Peter"]]
CITIES = [["Paris"], ["New", "York"], ["Berlin"], ["San", "Francisco"], ["Rome"], ["Tokyo"]]
VERBS = ["visited", "left", "loves", "remembers", "photographed"]
FILLERS = ["yesterday", "in the spring", "with friends", "again", "for a week"]
KOREAN_PEOPLE = ["이순신", "김철수", "박영희", "홍길동"]
KOREAN_CITIES = ["서울", "부산", "대전", "광주"]
KOREAN_ENDINGS = ["에 갔다.", "을 좋아한다.", "에서 일했다."]


def english_sentence(rng: random.Random, long: bool = False) -> tuple[list[str], list[str]]:
    """'Mary Smith visited New York yesterday .' with IOB2 tags; `long` repeats clauses past a small window."""
    words: list[str] = []
    tags: list[str] = []
    for clause in range(4 if long else 1):
        if clause:
            words.append("and"), tags.append("O")
        person, city = rng.choice(PEOPLE), rng.choice(CITIES)
        words += person + [rng.choice(VERBS)] + city + rng.choice(FILLERS).split()
        tags += ["B-PER"] + ["I-PER"] * (len(person) - 1) + ["O"] + ["B-LOC"] + ["I-LOC"] * (len(city) - 1)
        tags += ["O"] * (len(words) - len(tags))
    words.append("."), tags.append("O")
    return words, tags


def korean_sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    """Character units of '이순신은 서울에 갔다.' with KLUE-style PS/LC tags (a space is a unit tagged O)."""
    person, city, ending = rng.choice(KOREAN_PEOPLE), rng.choice(KOREAN_CITIES), rng.choice(KOREAN_ENDINGS)
    characters = list(person) + list("은 ") + list(city) + list(ending)
    tags = ["B-PS"] + ["I-PS"] * (len(person) - 1) + ["O", "O"] + ["B-LC"] + ["I-LC"] * (len(city) - 1) + ["O"] * len(ending)
    return characters, tags


def english_sentences(count: int, seed: int, long_every: int = 0) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    return [english_sentence(rng, long=bool(long_every) and number % long_every == long_every - 1) for number in range(count)]


def korean_sentences(count: int, seed: int) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    return [korean_sentence(rng) for _ in range(count)]


def write_conll(path: Path, sentences, separator: str = " ", extra_column: bool = False) -> str:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in sentences:
        for word, tag in zip(words, tags):
            lines.append(separator.join([word, "NN", tag] if extra_column else [word, tag]))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def write_klue(path: Path, sentences) -> str:
    lines = []
    for number, (characters, tags) in enumerate(sentences):
        lines.append(f"## klue-ner-test_{number:05d}\t{''.join(characters)}")
        lines += [f"{character}\t{tag}" for character, tag in zip(characters, tags)]
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def write_jsonl(path: Path, sentences) -> str:
    path.write_text(
        "".join(json.dumps({"tokens": words, "tags": tags}, ensure_ascii=False) + "\n" for words, tags in sentences), encoding="utf-8"
    )
    return str(path)


def tiny_init_run(run_dir: Path, texts: list[str], max_positions: int = 64) -> Path:
    """A tiny BERT run folder as `prefine pretrain` leaves it: tokenizer/, checkpoints/, run.json."""
    tokenizer = train_tokenizer(texts, TokenizerConfig(vocab_size=200, min_frequency=1), show_progress=False)
    save_tokenizer(tokenizer, run_dir / "tokenizer")
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
    )
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    checkpoint_config = {
        **dataclasses.asdict(config),
        "model_type": "bert",
        "architectures": ["BertForPreTraining"],
        "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
    }
    write_run(run_dir, {"kind": "pretrain", "model": dataclasses.asdict(config)})
    save_checkpoint(run_dir, 1, model.state_dict(), checkpoint_config, trainer_state=None, keep_last=1)
    return run_dir
