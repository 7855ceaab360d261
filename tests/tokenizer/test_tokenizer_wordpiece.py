"""WordPiece tokenizer: Korean survives normalization, files round-trip, transformers agrees."""

import json
import unicodedata

import numpy as np
import pytest
from tokenizers import Tokenizer

from prefine.errors import PrefineError
from prefine.tokenizer import (
    SPECIAL_TOKENS,
    TokenizerConfig,
    build_normalizer,
    continuation_mask,
    load_tokenizer,
    normalizer_settings,
    save_tokenizer,
    special_token_ids,
    tokenizer_fingerprint,
    train_tokenizer,
    vocabulary_in_id_order,
)

KOREAN_SENTENCE = "이 영화 정말 재미있어요. 한국어 감정 분석"
KOREAN_CORPUS = [
    "이 영화 정말 재미있어요.",
    "한국어 감정 분석은 어렵지 않아요.",
    "정말 재미있는 영화였다.",
    "감정 분석 모델을 만들어 봅시다.",
    "이 배우의 연기가 정말 좋았어요.",
    "한국어 문장을 분석하는 방법을 배웠다.",
    "영화가 지루해서 재미없었어요.",
]
ENGLISH_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A café in Zürich serves naïve tourists.",
    "Tokenizers split words into smaller pieces.",
    "The tokenizer learns the most frequent pieces.",
]
ENGLISH_SENTENCE = "The quick Café tokenizer jumps over unbelievable pieces."


def is_jamo(character: str) -> bool:
    return "\u1100" <= character <= "\u11ff" or "\u3130" <= character <= "\u318f"


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    sentences = (KOREAN_CORPUS + ENGLISH_CORPUS) * 20
    return train_tokenizer(iter(sentences), TokenizerConfig(vocab_size=300, lowercase=True, strip_accents=True), show_progress=False)


@pytest.fixture(scope="module")
def saved(tokenizer, tmp_path_factory):
    directory = tmp_path_factory.mktemp("tokenizer")
    save_tokenizer(tokenizer, directory, model_max_length=128)
    return directory


def test_korean_encodes_without_unk_or_jamo(tokenizer):
    encoding = tokenizer.encode(KOREAN_SENTENCE)
    assert "[UNK]" not in encoding.tokens
    assert not any(is_jamo(character) for token in encoding.tokens for character in token)
    assert "한국어" in encoding.tokens or "한국" in encoding.tokens  # whole syllables, learned as pieces
    assert tokenizer.decode(encoding.ids) == "이 영화 정말 재미있어요. 한국어 감정 분석"


def test_normalizer_keeps_hangul_and_folds_latin():
    normalizer = build_normalizer(lowercase=True, strip_accents=True)
    assert normalizer.normalize_str("한국어 감정 분석") == "한국어 감정 분석"
    assert unicodedata.is_normalized("NFC", normalizer.normalize_str("한국어"))
    assert normalizer.normalize_str("Café NAÏVE Zürich") == "cafe naive zurich"
    assert normalizer.normalize_str("ガ") == "ガ"  # the dakuten is spelling, not an accent
    assert build_normalizer(lowercase=True, strip_accents=False).normalize_str("Café 한국어") == "café 한국어"
    assert build_normalizer(lowercase=False, strip_accents=True).normalize_str("Café 한국어") == "Cafe 한국어"


def test_special_ids_and_pair_encoding(tokenizer):
    ids = special_token_ids(tokenizer)
    assert (ids.pad, ids.unk, ids.cls, ids.sep, ids.mask) == (0, 1, 2, 3, 4)
    pair = tokenizer.encode("the dog", "정말 좋았어요")
    assert pair.tokens[0] == "[CLS]" and pair.tokens.count("[SEP]") == 2 and pair.tokens[-1] == "[SEP]"
    first_sep = pair.tokens.index("[SEP]")
    assert pair.type_ids == [0] * (first_sep + 1) + [1] * (len(pair.tokens) - first_sep - 1)


def test_missing_special_token_is_named():
    bare = Tokenizer.from_str(
        json.dumps(
            {
                "version": "1.0",
                "truncation": None,
                "padding": None,
                "added_tokens": [],
                "normalizer": None,
                "pre_tokenizer": None,
                "post_processor": None,
                "decoder": None,
                "model": {
                    "type": "WordPiece",
                    "unk_token": "[UNK]",
                    "continuing_subword_prefix": "##",
                    "max_input_chars_per_word": 100,
                    "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4},
                },
            }
        )
    )
    with pytest.raises(PrefineError, match=r"no \[MASK\] token"):
        special_token_ids(bare)


def test_continuation_mask(tokenizer):
    mask = continuation_mask(tokenizer)
    tokens = vocabulary_in_id_order(tokenizer)
    assert mask.dtype == np.bool_ and mask.shape == (tokenizer.get_vocab_size(),)
    assert mask.any() and not mask[: len(SPECIAL_TOKENS)].any()
    assert all(mask[i] == token.startswith("##") for i, token in enumerate(tokens))
    encoding = tokenizer.encode("unbelievable tokenizers")
    assert [bool(mask[i]) for i in encoding.ids] == [token.startswith("##") for token in encoding.tokens]


def test_saved_files(saved, tokenizer):
    tokens = (saved / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert tokens == [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
    assert tokens[:5] == SPECIAL_TOKENS
    config = json.loads((saved / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["do_lower_case"] is True and config["strip_accents"] is True and config["model_max_length"] == 128
    assert json.loads((saved / "special_tokens_map.json").read_text())["mask_token"] == "[MASK]"
    assert normalizer_settings(load_tokenizer(saved)) == (True, True)


@pytest.mark.parametrize("text", [ENGLISH_SENTENCE, KOREAN_SENTENCE, "Café 한국어 정말 ガ 3.14!"])
def test_vocab_txt_alone_gives_the_same_ids(saved, tmp_path, text):
    for name in ("vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((saved / name).read_bytes())
    from_vocab = load_tokenizer(tmp_path)
    from_json = load_tokenizer(saved)
    assert from_vocab.encode(text).ids == from_json.encode(text).ids
    assert from_vocab.encode(text, "정말 좋았어요").type_ids == from_json.encode(text, "정말 좋았어요").type_ids
    assert tokenizer_fingerprint(tmp_path) == tokenizer_fingerprint(from_vocab)


def test_vocab_txt_from_bert_tooling_matches_bert_tokenizer_fast(tmp_path):
    # No Hangul or kana in the vocabulary: it came from BERT's normalizer, which must be reproduced
    # exactly (including its stripping of the dakuten in ガ) to give the model's ids.
    transformers = pytest.importorskip("transformers")
    tokens = SPECIAL_TOKENS + ["cafe", "ka", "カ", "##s", "naive", "!", "."]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    text = "CAFÉS ガ naïve!"
    reference = transformers.BertTokenizerFast.from_pretrained(str(tmp_path), do_lower_case=True)
    ours = load_tokenizer(tmp_path).encode(text)
    assert ours.ids == reference(text)["input_ids"]
    assert ours.tokens == ["[CLS]", "cafe", "##s", "カ", "naive", "!", "[SEP]"]


def test_vocab_txt_without_config_is_uncased_bert(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIAL_TOKENS + ["cafe", "한국어", "##s"]) + "\n", encoding="utf-8")
    assert load_tokenizer(tmp_path).encode("CAFÉS 한국어").tokens == ["[CLS]", "cafe", "##s", "한국어", "[SEP]"]


@pytest.mark.parametrize("text", [ENGLISH_SENTENCE, KOREAN_SENTENCE, "Hello [MASK] world 한국어!"])
def test_transformers_auto_tokenizer_agrees(saved, tokenizer, text):
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(str(saved))
    assert hf(text)["input_ids"] == tokenizer.encode(text).ids
    pair = hf(text, "정말 좋았어요")
    ours = tokenizer.encode(text, "정말 좋았어요")
    assert pair["input_ids"] == ours.ids and pair["token_type_ids"] == ours.type_ids
    assert hf.mask_token_id == 4 and hf.pad_token_id == 0


def test_fingerprint_keys_on_the_saved_tokenizer(saved, tokenizer, tmp_path):
    assert tokenizer_fingerprint(saved) == tokenizer_fingerprint(tokenizer) == tokenizer_fingerprint(str(saved))
    other = train_tokenizer(ENGLISH_CORPUS * 5, TokenizerConfig(vocab_size=120), show_progress=False)
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tokenizer)


def test_load_errors(tmp_path):
    with pytest.raises(PrefineError, match=r"tokenizer folder not found"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(PrefineError, match=r"neither tokenizer.json nor vocab.txt"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nsame\nsame\n", encoding="utf-8")
    with pytest.raises(PrefineError, match=r"line 4 repeats the token 'same'"):
        load_tokenizer(tmp_path)


def test_training_errors():
    with pytest.raises(PrefineError, match=r"no text"):
        train_tokenizer(iter([]), TokenizerConfig(vocab_size=100), show_progress=False)
    with pytest.raises(PrefineError, match=r"vocab_size 5"):
        train_tokenizer(["hello"], TokenizerConfig(vocab_size=5), show_progress=False)


def test_korean_survives_a_tight_alphabet_limit():
    # Syllables are characters of the alphabet: a limit large enough for the corpus keeps them all.
    corpus = KOREAN_CORPUS * 10
    syllables = {character for sentence in corpus for character in sentence if "\uac00" <= character <= "\ud7a3"}
    tokenizer = train_tokenizer(corpus, TokenizerConfig(vocab_size=200, limit_alphabet=len(syllables) + 10), show_progress=False)
    assert "[UNK]" not in tokenizer.encode(" ".join(KOREAN_CORPUS)).tokens


def test_the_same_corpus_trains_the_same_vocabulary_in_the_same_order():
    # Many merges tie on count here; the trainer alone broke ties by ids numbered in hash-map
    # order, so two trainings in one process already differed in most of their pieces.
    rng = np.random.default_rng(0)
    syllables = [chr(code) for code in range(0xAC00, 0xAC00 + 200)] + list("abcdefghij")
    sentences = [" ".join("".join(rng.choice(syllables, size=rng.integers(1, 5))) for _ in range(8)) for _ in range(1500)]
    config = TokenizerConfig(vocab_size=1000)
    first = vocabulary_in_id_order(train_tokenizer(sentences, config, show_progress=False))
    for _ in range(2):
        assert vocabulary_in_id_order(train_tokenizer(iter(sentences), config, show_progress=False)) == first
    assert first[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS and len(first) == 1000


def test_continuations_seeded_for_training_stay_ordinary_pieces(tokenizer, saved):
    # They were the trainer's special tokens only to fix their ids: text spelling one is split as
    # text, and the saved tokenizer lists only the five real special tokens.
    assert "##s" in tokenizer.get_vocab()
    assert tokenizer.encode("tokenizers ##s", add_special_tokens=False).tokens[-1] != "##s"
    added = json.loads((saved / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    assert [token["content"] for token in added] == SPECIAL_TOKENS
    assert tokenizer.decode(tokenizer.encode("pieces").ids) == "pieces"
