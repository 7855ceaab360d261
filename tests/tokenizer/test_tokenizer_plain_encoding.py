"""Bulk text-to-ids encoding: the ASCII shortcut gives exactly the ids of the full tokenizer."""

import random

import numpy as np
import pytest
from tokenizers import Regex, Tokenizer, normalizers

from prefine.tokenizer import TokenizerConfig, train_tokenizer
from prefine.tokenizer.plain_encoding import PlainTextEncoder, ascii_lowercasing

TRAINING_TEXT = [
    "The Quick brown fox jumps over the lazy dog, again and again.",
    "A café in Zürich serves naïve tourists; ÉCOLE and Ωmega too.",
    "이 영화 정말 재미있어요. 한국어 감정 분석은 어렵지 않아요.",
    "def parse(text): return text.split(',')  # tokens [0] and {1}",
    "日本語のテキストもガ少し, and 中文 characters.",
] * 20

PIECES = [
    "The",
    "QUICK",
    "brown",
    "Fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "again",
    "café",
    "Zürich",
    "naïve",
    "ÉCOLE",
    "Ωmega",
    "이",
    "영화",
    "정말",
    "재미있어요",
    "한국어",
    "def",
    "parse(text):",
    "return",
    "split(',')",
    "#",
    "[0]",
    "{1}",
    "日本語",
    "ガ",
    "中文",
    "[MASK]",
    "[mask]",
    "[CLS]",
    "x[SEP]y",
    "\t",
    "\x00",
    "\x07",
    "\ufffd",
    "e\u0301",
    "...",
    "--",
    "http://example.com/a_b?c=d",
    "ＡＢＣ",
    "ﬁ",
    "  ",
]


def varied_texts(count: int, seed: int = 0) -> list[str]:
    """Mostly plain ASCII sentences (the shortcut) mixed with every case it must hand to the full tokenizer."""
    rng = random.Random(seed)
    ascii_pieces = [piece for piece in PIECES if piece.isascii() and piece.isprintable() and "[" not in piece]
    texts = []
    for _ in range(count):
        pool = ascii_pieces if rng.random() < 0.7 else PIECES
        texts.append(" ".join(rng.choice(pool) for _ in range(rng.randint(0, 12))))
    return texts


@pytest.fixture(scope="module")
def prefine_tokenizer() -> Tokenizer:
    return train_tokenizer(TRAINING_TEXT, TokenizerConfig(vocab_size=300, min_frequency=1), show_progress=False)


def with_normalizer(tokenizer: Tokenizer, normalizer) -> Tokenizer:
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.normalizer = normalizer
    return copy


def reference_ids(tokenizer: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]


def assert_same_ids(encoder: PlainTextEncoder, reference: Tokenizer, texts: list[str]) -> None:
    tokens, lengths = encoder.encode_ids(texts)
    expected = reference_ids(reference, texts)
    assert lengths.tolist() == [len(ids) for ids in expected]
    assert tokens.tolist() == [token for ids in expected for token in ids]


@pytest.mark.parametrize(
    "normalizer_name",
    ["prefine", "bert-uncased", "bert-cased", "lowercase-nfkc", "none"],
)
def test_ids_equal_the_full_tokenizer_and_the_shortcut_is_taken(prefine_tokenizer, normalizer_name):
    normalizer = {
        "prefine": prefine_tokenizer.normalizer,
        "bert-uncased": normalizers.BertNormalizer(lowercase=True),
        "bert-cased": normalizers.BertNormalizer(lowercase=False, strip_accents=False),
        "lowercase-nfkc": normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()]),
        "none": None,
    }[normalizer_name]
    tokenizer = with_normalizer(prefine_tokenizer, normalizer)
    encoder = PlainTextEncoder(tokenizer)
    texts = varied_texts(600)
    assert_same_ids(encoder, tokenizer, texts)
    shortcut = encoder._shortcut_rows(texts)
    assert 0.5 * len(texts) < len(shortcut) < len(texts), "most texts take the shortcut, the unusual ones do not"
    assert not any("[mask]" in texts[row].lower() or "\t" in texts[row] or not texts[row].isascii() for row in shortcut)


def test_unknown_normalizers_use_the_full_tokenizer(prefine_tokenizer):
    # Strip changes ASCII text in ways the shortcut does not model; a Replace that can match
    # ASCII ("-" first in a class is a literal hyphen) must not be mistaken for accent stripping.
    for normalizer in (
        normalizers.Sequence([normalizers.Strip(), normalizers.Lowercase()]),
        normalizers.Replace(Regex("[-\u0300]"), ""),
        normalizers.Replace(Regex("o+"), "0"),
        normalizers.Prepend("_"),
    ):
        tokenizer = with_normalizer(prefine_tokenizer, normalizer)
        encoder = PlainTextEncoder(tokenizer)
        assert encoder.unnormalized is None
        assert_same_ids(encoder, tokenizer, varied_texts(200, seed=1))


def test_ascii_lowercasing_reads_normalizer_settings():
    assert ascii_lowercasing(None) is False
    assert ascii_lowercasing({"type": "BertNormalizer", "lowercase": True}) is True
    assert ascii_lowercasing({"type": "BertNormalizer", "lowercase": False}) is False
    accents = {"type": "Replace", "pattern": {"Regex": "[\u0300-\u036f\u1ab0-\u1aff]"}, "content": ""}
    assert ascii_lowercasing({"type": "Sequence", "normalizers": [{"type": "NFD"}, accents, {"type": "NFC"}]}) is False
    assert ascii_lowercasing({"type": "Replace", "pattern": {"Regex": "[a-\u0300]"}, "content": ""}) is None
    assert ascii_lowercasing({"type": "Replace", "pattern": {"String": "é"}, "content": "e"}) is False
    assert ascii_lowercasing({"type": "Replace", "pattern": {"String": "e"}, "content": "é"}) is None
    assert ascii_lowercasing({"type": "Sequence", "normalizers": [{"type": "Lowercase"}, {"type": "Strip"}]}) is None


def test_padding_truncation_and_empty_input(prefine_tokenizer):
    padded = Tokenizer.from_str(prefine_tokenizer.to_str())
    padded.enable_padding(length=64)
    padded.enable_truncation(max_length=3)
    texts = varied_texts(50, seed=2) + [""]
    tokens, lengths = PlainTextEncoder(padded).encode_ids(texts)
    expected = reference_ids(prefine_tokenizer, texts)
    assert tokens.tolist() == [token for ids in expected for token in ids] and lengths[-1] == 0
    assert padded.padding is not None and padded.truncation is not None, "the caller's tokenizer is left as it was"
    tokens, lengths = PlainTextEncoder(prefine_tokenizer).encode_ids([])
    assert tokens.dtype == np.int64 and len(tokens) == 0 and len(lengths) == 0
