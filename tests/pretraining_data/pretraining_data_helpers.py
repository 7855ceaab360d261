"""Helpers for the pre-training data tests: a throwaway WordPiece tokenizer and generated corpora."""

from __future__ import annotations

import math
import random

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "the of and to in is was for on that with as by at from his an were are which this be has or had "
    "international understanding reconstruction unbelievable running jumped quickly slowly mountain river "
    "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega"
).split()


def train_tokenizer(sentences: list[str], vocab_size: int = 150) -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer.train_from_iterator(sentences, trainer)
    return tokenizer


def random_documents(
    seed: int, num_documents: int, sentences: tuple[int, int] = (2, 8), words: tuple[int, int] = (3, 12)
) -> list[list[str]]:
    rng = random.Random(seed)
    return [
        [" ".join(rng.choices(WORDS, k=rng.randint(*words))) + "." for _ in range(rng.randint(*sentences))] for _ in range(num_documents)
    ]


def within_sigmas(count: int, trials: int, probability: float, sigmas: float = 5.0) -> bool:
    """Is `count` successes in `trials` Binomial(trials, probability) draws within `sigmas` standard deviations?"""
    return abs(count - trials * probability) <= sigmas * math.sqrt(trials * probability * (1 - probability))
