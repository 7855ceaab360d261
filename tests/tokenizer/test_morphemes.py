"""Korean morpheme cuts before WordPiece (`--morphemes kiwi`): offsets, "##" continuations,
save/load, copies, bulk encoding, the fingerprint, and the option off changing nothing."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest

from prefine.errors import PrefineError
from prefine.tasks.qa_data import QAExample, prepare_features
from prefine.tokenizer import (
    PlainTextEncoder,
    TokenizerConfig,
    copy_tokenizer,
    load_tokenizer,
    morpheme_analyser,
    recorded_morphemes,
    save_tokenizer,
    tokenizer_fingerprint,
    train_tokenizer,
)

KOREAN = [
    "분석기를 써 봤어요.",
    "이순신은 조선 중기의 무신이다.",
    "이 영화는 정말 재미있어요.",
    "그 배우는 너무 감동적이었다.",
    "우리 가족은 극장에 갔다.",
    "주인공이 돼서 기뻤어요.",
    "아이폰 15를 샀는데 3일 만에 고장났음ㅋㅋ",
    "학교에서 친구를 만났다.",
]
MIXED = "분석기를 써 봤어요. iPhone 15를 샀는데 돼서 3일 만에 BERT로 했다!"
UNKNOWN_STEM = "햄스터를 봤어요"


@pytest.fixture(scope="module")
def morpheme_tokenizer():
    return train_tokenizer(KOREAN * 20, TokenizerConfig(vocab_size=400, min_frequency=1, morphemes="kiwi"), show_progress=False)


def test_words_are_cut_at_morpheme_boundaries_in_the_original_text(morpheme_tokenizer):
    pieces = morpheme_tokenizer.pre_tokenizer.pre_tokenize_str(MIXED)
    words = [word for word, _ in pieces]
    # A stem and its particle or ending part; the later morphemes continue the word ("##").
    assert words[:2] == ["분석기", "##를"]
    assert ["봤", "##어요"] == words[3:5]
    assert ["15", "##를"] == words[words.index("iPhone") + 1 : words.index("iPhone") + 3]
    # Contractions, whose morphemes share their characters (써 = 쓰 + 어, 돼서 = 되 + 어서), stay whole.
    assert "써" in words and "돼서" in words
    assert "iPhone" in words and "BERT" in words  # words without Hangul are never cut
    for word, (start, end) in pieces:
        assert MIXED[start:end] == word.removeprefix("##")  # every piece maps to its own characters


def test_encoded_pieces_map_back_to_the_characters_they_came_from(morpheme_tokenizer):
    encoding = morpheme_tokenizer.encode(MIXED)
    assert "##를" in encoding.tokens and "[UNK]" in encoding.tokens  # "iphone", "bert" ... are not in this Korean vocabulary
    for token, (start, end) in zip(encoding.tokens, encoding.offsets):
        if token in ("[CLS]", "[SEP]", "[UNK]"):
            continue
        assert MIXED[start:end].lower() == token.removeprefix("##")


def test_training_learns_continuation_morphemes_and_decoding_rejoins_them(morpheme_tokenizer):
    vocab = morpheme_tokenizer.get_vocab()
    assert {"##를", "##은", "##어요"} <= set(vocab)
    encoding = morpheme_tokenizer.encode("이순신은 분석기를 써 봤어요")
    assert encoding.tokens[1:-1] == ["이순신", "##은", "분석기", "##를", "써", "봤", "##어요"]
    assert morpheme_tokenizer.decode(encoding.ids) == "이순신은 분석기를 써 봤어요"


def test_the_option_round_trips_through_save_and_load(morpheme_tokenizer, tmp_path):
    save_tokenizer(morpheme_tokenizer, tmp_path)
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert settings["prefine_morphemes"] == "kiwi" and settings["prefine_morphemes_version"].startswith("kiwipiepy 0.24")
    # tokenizer.json holds BERT's pre-tokenizer; the morpheme step is back after loading.
    assert json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))["pre_tokenizer"]["type"] == "BertPreTokenizer"
    assert recorded_morphemes(tmp_path) == "kiwi"
    loaded = load_tokenizer(tmp_path)
    assert morpheme_analyser(loaded) == "kiwi" and morpheme_analyser(morpheme_tokenizer) == "kiwi"
    for text in [MIXED, *KOREAN]:
        assert loaded.encode(text).tokens == morpheme_tokenizer.encode(text).tokens
    assert tokenizer_fingerprint(loaded) == tokenizer_fingerprint(morpheme_tokenizer) == tokenizer_fingerprint(tmp_path)

    # The same files without the record are the plain tokenizer: no cuts, another fingerprint.
    del settings["prefine_morphemes"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    plain = load_tokenizer(tmp_path)
    assert morpheme_analyser(plain) is None
    assert [word for word, _ in plain.pre_tokenizer.pre_tokenize_str("분석기를")] == ["분석기를"]
    assert [word for word, _ in loaded.pre_tokenizer.pre_tokenize_str("분석기를")] == ["분석기", "##를"]
    assert tokenizer_fingerprint(plain) != tokenizer_fingerprint(loaded)


def test_an_unknown_stem_keeps_its_particle(morpheme_tokenizer):
    # 햄스터 never occurs in the corpus: without the cut the whole word is one [UNK].
    assert morpheme_tokenizer.encode(UNKNOWN_STEM).tokens[1:-1] == ["[UNK]", "##를", "봤", "##어요"]


def test_a_qa_answer_that_ends_before_its_particle_is_a_whole_token_span(morpheme_tokenizer):
    context = "세종대왕은 1443년에 훈민정음을 창제하였다."
    answer = {"text": "훈민정음", "answer_start": context.index("훈민정음")}
    example = QAExample(id="q", question="무엇을 창제하였는가?", context=context, answers=[answer])
    features = prepare_features([example], morpheme_tokenizer, max_length=64, max_query_length=16)
    # Without the cut "훈민정음을" is one piece, and the answer span would grow to the whole word.
    assert features.skipped_example_ids == []
    start, end = int(features.start_positions[0]), int(features.end_positions[0])
    assert context[features.offsets[0, start, 0] : features.offsets[0, end, 1]] == "훈민정음"


def test_copies_and_bulk_encoding_keep_the_morpheme_step(morpheme_tokenizer):
    copy = copy_tokenizer(morpheme_tokenizer)
    copy.enable_truncation(8)
    assert morpheme_tokenizer.truncation is None  # an independent copy
    assert morpheme_analyser(copy) == "kiwi"
    assert copy.encode(UNKNOWN_STEM).tokens[1:-1] == ["[UNK]", "##를", "봤", "##어요"]
    copy.no_truncation()
    copy.enable_padding(length=64)  # makes the bulk encoder work on a copy of its own
    texts = [MIXED, UNKNOWN_STEM, "plain ascii text only", *KOREAN]
    for tokenizer in (morpheme_tokenizer, copy):
        ids, lengths = PlainTextEncoder(tokenizer).encode_ids(texts)
        expected = [morpheme_tokenizer.encode(text, add_special_tokens=False).ids for text in texts]
        assert lengths.tolist() == [len(row) for row in expected]
        assert ids.tolist() == [token for row in expected for token in row]


def test_a_mask_token_is_kept_and_the_words_around_it_are_cut(morpheme_tokenizer):
    encoding = morpheme_tokenizer.encode("분석기를 [MASK] 봤어요")
    assert encoding.tokens[1:-1] == ["분석기", "##를", "[MASK]", "봤", "##어요"]


def test_the_option_off_changes_nothing(tmp_path):
    tokenizer = train_tokenizer(KOREAN * 20, TokenizerConfig(vocab_size=400, min_frequency=1), show_progress=False)
    assert TokenizerConfig().morphemes == "none" and morpheme_analyser(tokenizer) is None
    assert [word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str("분석기를")] == ["분석기를"]
    save_tokenizer(tokenizer, tmp_path)
    # Byte for byte what `Tokenizer.save` writes, no morpheme keys, and the fingerprint's formula as before the option.
    assert (tmp_path / "tokenizer.json").read_text(encoding="utf-8") == tokenizer.to_str(pretty=True)
    assert not any(key.startswith("prefine_") for key in json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8")))
    canonical = json.dumps(json.loads(tokenizer.to_str()), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert tokenizer_fingerprint(tokenizer) == tokenizer_fingerprint(tmp_path) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert recorded_morphemes(tmp_path) is None and morpheme_analyser(load_tokenizer(tmp_path)) is None


def test_a_missing_kiwipiepy_is_one_line_naming_the_extra(morpheme_tokenizer, tmp_path, monkeypatch):
    save_tokenizer(morpheme_tokenizer, tmp_path)
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)  # `import kiwipiepy` now raises ImportError
    for attempt in (lambda: TokenizerConfig(morphemes="kiwi"), lambda: load_tokenizer(tmp_path)):
        with pytest.raises(PrefineError) as error:
            attempt()
        assert "\n" not in str(error.value)
        assert "kiwipiepy" in str(error.value) and "pip install 'prefine[korean]'" in str(error.value)
    TokenizerConfig()  # the option off never imports it


def test_an_unknown_recorded_analyser_is_refused(morpheme_tokenizer, tmp_path):
    save_tokenizer(morpheme_tokenizer, tmp_path)
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**settings, "prefine_morphemes": "mecab"}), encoding="utf-8")
    with pytest.raises(PrefineError, match="prefine_morphemes 'mecab'.*upgrade prefine"):
        load_tokenizer(tmp_path)


def test_another_analyser_version_warns_on_load(morpheme_tokenizer, tmp_path):
    save_tokenizer(morpheme_tokenizer, tmp_path)
    settings = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({**settings, "prefine_morphemes_version": "kiwipiepy 0.1.0"}), encoding="utf-8"
    )
    with pytest.warns(UserWarning, match="kiwipiepy 0.1.0"):
        assert morpheme_analyser(load_tokenizer(tmp_path)) == "kiwi"
