"""Token-classification data: readers of every format, tag schemes, piece alignment round trips, windows that lose nothing."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from prefine.errors import PrefineError
from prefine.model import IGNORE_LABEL
from prefine.tasks.ner_data import (
    TagSet,
    align,
    detect_scheme,
    encode_corpus,
    make_windows,
    piece_labels,
    read_tagged,
    sentence_text,
    unit_tags,
)
from prefine.tasks.token_classification import NerDataConfig, choose_scheme, predict_pieces
from prefine.tokenizer import TokenizerConfig, train_tokenizer

KLUE_STYLE = (
    "## klue-ner-v1_dev_00000\t<이순신:PS>은 <조선:LC>의 무신이다.\n"
    "이\tB-PS\n순\tI-PS\n신\tI-PS\n은\tO\n \tO\n조\tB-LC\n선\tI-LC\n의\tO\n \tO\n무\tO\n신\tO\n이\tO\n다\tO\n.\tO\n"
    "\n"
    "## klue-ner-v1_dev_00001\t<서울 시청:OG>\n"
    "서\tB-OG\n울\tI-OG\n \tI-OG\n시\tI-OG\n청\tI-OG\n"
)
CONLL_STYLE = (
    "-DOCSTART- -X- -X- O\n"
    "\n"
    "EU NNP B-NP B-ORG\n"
    "rejects VBZ B-VP O\n"
    "German JJ B-NP B-MISC\n"
    "call NN I-NP O\n"
    "\n"
    "# a comment line\n"
    "Peter NNP B-NP B-PER\n"
    "Blackburn NNP I-NP I-PER\n"
    "#\tO\n"
)


@pytest.fixture
def tokenizer():
    texts = [
        "EU rejects German call to boycott British lamb .",
        "Peter Blackburn",
        "이순신은 조선의 무신이다.",
        "서울 시청",
        "Mary Smith visited New York",
    ]
    return train_tokenizer(texts * 3, TokenizerConfig(vocab_size=150, min_frequency=1), show_progress=False)


def test_conll_columns_skip_docstart_and_comments_and_read_the_last_column(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CONLL_STYLE, encoding="utf-8")
    corpus = read_tagged(str(path))
    assert corpus.layout == "words"
    assert [sentence.units for sentence in corpus.sentences] == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn", "#"]]
    assert [sentence.tags for sentence in corpus.sentences] == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert corpus.sentences[1].lines == [9, 10, 11]
    path.write_text(CONLL_STYLE.replace("#\tO\n", ""), encoding="utf-8")
    chunks = read_tagged(str(path), tag_column=3)  # the chunk column instead of the entity column
    assert chunks.sentences[0].tags == ["B-NP", "B-VP", "B-NP", "I-NP"]


def test_character_files_keep_spaces_as_units_and_are_detected(tmp_path):
    path = tmp_path / "klue_ner_dev.tsv"
    path.write_text(KLUE_STYLE, encoding="utf-8")
    corpus = read_tagged(str(path))
    assert corpus.layout == "characters"
    first, second = corpus.sentences
    text, spans = sentence_text(first.units, corpus.layout)
    assert text == "이순신은 조선의 무신이다."
    assert spans[4].tolist() == [4, 5] and first.units[4] == " "
    assert second.tags == ["B-OG", "I-OG", "I-OG", "I-OG", "I-OG"]
    assert corpus.sentences[0].lines[0] == 2  # the ## line is skipped, not counted as a unit


def test_jsonl_and_saved_datasets_with_label_names(tmp_path):
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text(json.dumps({"tokens": ["Mary", "visited", "Paris"], "tags": ["B-PER", "O", "B-LOC"]}) + "\n", encoding="utf-8")
    assert read_tagged(str(jsonl)).sentences[0].tags == ["B-PER", "O", "B-LOC"]
    jsonl.write_text(json.dumps({"tokens": ["Mary"], "ner_tags": [1]}) + "\n", encoding="utf-8")
    with pytest.raises(PrefineError, match="numbers, not names"):
        read_tagged(str(jsonl))

    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
        }
    )
    dataset = datasets.Dataset.from_dict({"tokens": [["Mary", "Smith", "sings"]], "ner_tags": [[1, 2, 0]]}, features=features)
    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": dataset}).save_to_disk(str(folder))
    corpus = read_tagged(str(folder))
    assert corpus.sentences[0].tags == ["B-PER", "I-PER", "O"] and corpus.location_unit == "row"


def test_schemes_are_detected_and_a_tag_training_never_saw_names_its_line(tmp_path):
    assert detect_scheme([["B-PER", "I-PER", "O"]]) == "IOB2"
    assert detect_scheme([["I-PER", "I-PER", "O", "B-PER"]]) == "IOB1"
    assert detect_scheme([["S-PER", "O", "B-LOC", "E-LOC"]]) == "IOBES"
    assert detect_scheme([["U-PER", "O", "B-LOC", "L-LOC"]]) == "BILOU"

    train, dev = tmp_path / "train.txt", tmp_path / "dev.txt"
    train.write_text("Mary B-PER\nsings O\n", encoding="utf-8")
    dev.write_text("Mary B-PER\n\nParis B-LOC\n", encoding="utf-8")
    tag_set = TagSet.from_corpus(read_tagged(str(train)), "IOB2")
    assert tag_set.names == ["O", "B-PER"]
    with pytest.raises(PrefineError, match=r"dev.txt line 3 has the tag 'B-LOC', which the training data never uses"):
        tag_set.ids(read_tagged(str(dev)))
    train.write_text("Mary E-PER\n", encoding="utf-8")
    with pytest.raises(PrefineError, match=r"train.txt line 1 has the tag 'E-PER'"):
        choose_scheme(read_tagged(str(train)), NerDataConfig(tag_scheme="iob2"))


def _round_trip(units: list[str], tags: list[str], layout: str, tokenizer, scheme: str = "IOB2") -> tuple[list[str], object]:
    text, spans = sentence_text(units, layout)
    alignment = align([text], [spans], tokenizer)[0]
    tag_set = TagSet(["O", *sorted(set(tags) - {"O"})], scheme)
    ids = np.asarray([tag_set.names.index(tag) for tag in tags])
    labels = piece_labels(alignment, ids, tag_set, label_all_pieces=False)
    piece_tags = [tag_set.names[label] if label != IGNORE_LABEL else None for label in labels]
    return unit_tags(alignment, piece_tags, scheme), alignment


VANISHING = ("\x07", "")  # a control character the normalizer drops, and an empty token


def test_word_alignment_round_trips_every_tag_including_unknown_and_vanishing_units(tokenizer):
    rng = random.Random(0)
    words = ["Mary", "Smith", "visited", "New", "York", "Zürich☃", "boycott", "\x07", "lamb", ""]
    for _ in range(100):
        units = rng.choices(words, k=rng.randint(1, 12))
        tags = []
        for _ in units:
            previous = tags[-1] if tags else "O"
            options = ["O", "B-PER", "B-LOC"] + ([f"I-{previous[2:]}"] if previous != "O" else [])
            tags.append(rng.choice(options))
        # A unit without any piece ("\x07" is dropped by the normalizer, "" has no characters) can
        # only be recovered from its neighbours: inside an entity that continues past it, else O.
        expected = list(tags)
        for index, unit in enumerate(units):
            if unit in VANISHING:
                following = next((tags[later] for later in range(index + 1, len(units)) if units[later] not in VANISHING), "O")
                previous = expected[index - 1] if index else "O"
                inside = previous != "O" and following == f"I-{previous[2:]}"
                expected[index] = f"I-{previous[2:]}" if inside else "O"
        result, alignment = _round_trip(units, expected, "words", tokenizer)
        assert len(result) == len(units)
        assert result == expected, (units, expected, result)
    assert tokenizer.token_to_id("[UNK]") in _round_trip(["Zürich☃"], ["B-LOC"], "words", tokenizer)[1].piece_ids.tolist()


def test_character_alignment_round_trips_entities_made_of_whole_space_separated_groups(tokenizer):
    """Pieces never cross a space, so entities whose edges are group edges survive exactly, spaces inside them included."""
    rng = random.Random(1)
    pool = list("이순신은조선의무신이다서울시청.")
    for _ in range(100):
        units: list[str] = []
        tags: list[str] = []
        previous_type = None
        for group in range(rng.randint(1, 6)):
            characters = rng.choices(pool, k=rng.randint(1, 4))
            kind = rng.choice([None, "PS", "LC"])
            joined = (
                group and kind is not None and kind == previous_type and rng.random() < 0.5
            )  # "<서울 시청:OG>": one entity over a space
            if group:
                units.append(" ")
                tags.append(f"I-{kind}" if joined else "O")
            units += characters
            if kind is None:
                tags += ["O"] * len(characters)
            else:
                tags += ([f"I-{kind}"] if joined else [f"B-{kind}"]) + [f"I-{kind}"] * (len(characters) - 1)
            previous_type = kind
        result, alignment = _round_trip(units, tags, "characters", tokenizer)
        assert len(result) == len(units)
        assert result == tags, (units, tags, result)


def test_iobes_pieces_covering_several_characters_stay_well_formed(tokenizer):
    units = list("서울 시청")
    text, spans = sentence_text(units, "characters")
    alignment = align([text], [spans], tokenizer)[0]
    assert (alignment.unit_glued_to >= 0).any(), "the test needs a piece spanning several characters"
    piece_tags = ["S-OG" if piece == alignment.unit_anchor[0] else "O" for piece in range(len(alignment.piece_ids))]
    tags = unit_tags(alignment, piece_tags, "IOBES")
    glued = int(np.flatnonzero(alignment.unit_glued_to == 0).max())
    assert tags[0] == "B-OG" and tags[glued] == "E-OG" and all(tag == "I-OG" for tag in tags[1:glued])


def test_label_all_pieces_labels_later_pieces_inside_never_with_a_copied_b(tokenizer):
    units = ["Blackstoner", "rejects"]  # tagged B-PER O: the unit labels [1, 0] below
    text, spans = sentence_text(units, "words")
    alignment = align([text], [spans], tokenizer)[0]
    assert len(alignment.piece_ids) > 2, "the test needs a word split into several pieces"
    tag_set = TagSet(["O", "B-PER", "I-PER"], "IOB2")
    labels = piece_labels(alignment, np.asarray([1, 0]), tag_set, label_all_pieces=True)
    first_word = alignment.piece_unit == 0
    assert labels[first_word].tolist() == [1] + [2] * (int(first_word.sum()) - 1)
    assert (labels[~first_word] == 0).all()
    assert (piece_labels(alignment, np.asarray([1, 0]), tag_set, label_all_pieces=False)[first_word][1:] == IGNORE_LABEL).all()


class PieceEcho(torch.nn.Module):
    """Logits that reveal the piece: the winning class of every position is its input id modulo the class count."""

    num_labels = 7

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        from prefine.model.heads import TokenClassificationOutput

        return TokenClassificationOutput(torch.nn.functional.one_hot(input_ids % self.num_labels, self.num_labels).float() * 5, None)


@pytest.mark.parametrize("max_seq_length,stride", [(6, 1), (6, 4), (10, 3), (12, 10), (64, 20)])
def test_windows_lose_no_piece_and_each_piece_is_predicted_once_from_its_best_window(tokenizer, max_seq_length, stride):
    rng = random.Random(max_seq_length * 100 + stride)
    words = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "Peter", "Blackburn"]
    sentences = [rng.choices(words, k=rng.randint(1, 40)) for _ in range(30)]
    texts_spans = [sentence_text(units, "words") for units in sentences]
    alignments = align([text for text, _ in texts_spans], [spans for _, spans in texts_spans], tokenizer)
    windows = make_windows(alignments, max_seq_length, stride, tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]"))
    assert windows.lengths.max() <= max_seq_length
    owners = {}
    for window in range(len(windows)):
        owned = windows.owned[windows.offsets[window] : windows.offsets[window + 1]]
        for position in np.flatnonzero(owned):
            key = (int(windows.sentence[window]), int(windows.first_piece[window]) + int(position) - 1)
            assert key not in owners
            owners[key] = window
    assert len(owners) == sum(len(alignment.piece_ids) for alignment in alignments)
    predictions = predict_pieces(PieceEcho(), windows, [len(a.piece_ids) for a in alignments], 8, torch.device("cpu"), 0)
    for alignment, predicted in zip(alignments, predictions.tag_ids):
        assert predicted.tolist() == (alignment.piece_ids % PieceEcho.num_labels).tolist()


def test_encoding_a_corpus_reports_long_sentences_and_keeps_every_unit(tmp_path, tokenizer):
    path = tmp_path / "long.txt"
    units = ["EU", "rejects", "German", "call"] * 10
    path.write_text("".join(f"{unit} {'B-ORG' if unit == 'EU' else 'O'}\n" for unit in units), encoding="utf-8")
    corpus = read_tagged(str(path))
    tag_set = TagSet.from_corpus(corpus, "IOB2")
    encoded = encode_corpus(corpus, tokenizer, tag_set, max_seq_length=16, stride=7)
    assert len(encoded.windows) > 1 and "1 sentences are longer" in encoded.notes[0]
    anchors = encoded.alignments[0].unit_anchor
    assert (anchors >= 0).all()
    # Every unit's label is trained exactly once over all windows.
    assert int((encoded.windows.labels != IGNORE_LABEL).sum()) == len(units)


def test_entities_whose_edge_falls_inside_a_piece_are_reported(tmp_path, tokenizer):
    path = tmp_path / "klue.tsv"
    path.write_text(KLUE_STYLE, encoding="utf-8")
    corpus = read_tagged(str(path))
    encoded = encode_corpus(corpus, tokenizer, TagSet.from_corpus(corpus, "IOB2"), max_seq_length=64, stride=31)
    text, spans = sentence_text(corpus.sentences[0].units, "characters")
    pieces = tokenizer.encode(text, add_special_tokens=False).tokens
    assert "이순신은" in pieces, "the test needs the name and its particle as one piece"
    split = [int(note.split()[0]) for note in encoded.notes if "of 3 entities begin or end inside a word piece" in note]
    # 이순신 inside "이순신은" for sure; 조선 inside "조선의" if the vocabulary merged it; 서울 시청 is two whole pieces.
    expected = 1 + ("조선의" in pieces)
    assert split == [expected], encoded.notes
