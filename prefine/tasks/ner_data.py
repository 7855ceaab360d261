"""Tagged sentences in, word pieces out, one tag per input unit back: the data side of token classification.

1. **Readers.** `read_tagged` reads CoNLL-style column files (token and tag per line, tab- or
   space-separated, blank line between sentences, `-DOCSTART-` and comment lines skipped),
   KLUE-style character files (one character per line with its tag, a space is a character,
   `##` comment lines), JSONL with `tokens`/`tags` lists, and Hugging Face datasets whose
   integer `ner_tags` carry their names in the feature. A sentence is a list of *units* (words,
   or characters for the character layout) and their tags; its text is the units joined by a
   space (words) or by nothing (characters), so every unit has a character span in it.
2. **Tags.** `detect_scheme` tells IOB1, IOB2, IOBES and BILOU apart; `TagSet` fixes the label
   order and names the file and line of a tag training never saw.
3. **Alignment.** `align` tokenizes a sentence's text with offsets and maps word pieces to
   units: a piece belongs to the unit holding its first character; a unit's first piece (its
   *anchor*) carries the unit's tag. In the character layout one piece often covers several
   characters: the later ones are *glued* to the character that starts the piece. Units with
   no piece at all (a space between characters, a character the normalizer drops) get their
   tag from their neighbours (`unit_tags`), so every unit gets exactly one tag.
4. **Windows.** `make_windows` cuts a sentence longer than --max-seq-length into overlapping
   windows, --stride pieces apart, and gives each piece to the window where it has the most
   context on both sides; only there is it trained on and predicted. Nothing is dropped.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tokenizers import Tokenizer

from prefine.corpus.datasets_source import load_dataset_source
from prefine.corpus.readers import iter_file_lines
from prefine.errors import PrefineError
from prefine.jsonio import iter_jsonl
from prefine.labels import IGNORE_LABEL
from prefine.metrics.entities import lenient_chunks
from prefine.tokenizer import special_token_id

Layout = Literal["words", "characters"]
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
TOKEN_FIELDS = ("tokens", "words", "characters", "chars")
TAG_FIELDS = ("ner_tags", "tags", "labels", "ner", "tag")
DOCUMENT_START = "-DOCSTART-"
_TAG_LIKE = re.compile(r"^(O|[BIESLU]-\S+)$")
SCHEMES = ("IOB1", "IOB2", "IOBES", "BILOU")
_SCHEME_POSITIONS = {"IOB1": "BIO", "IOB2": "BIO", "IOBES": "BIOES", "BILOU": "BILOU"}
ENCODE_CHUNK = 2_000


# ---------------------------------------------------------------------------------------------
# Sentences


@dataclass
class TaggedSentence:
    units: list[str]
    tags: list[str] | None  # None for unlabelled input
    lines: list[int]  # where each unit came from (file line, JSONL line or dataset row)


@dataclass
class TaggedCorpus:
    source: str
    sentences: list[TaggedSentence]
    layout: Layout
    description: str  # how the source was read, for the one-line report
    location_unit: str = "line"

    def where(self, sentence: int, unit: int) -> str:
        return f"{self.location_unit} {self.sentences[sentence].lines[unit]}"


def joiner(layout: Layout) -> str:
    return "" if layout == "characters" else " "


def sentence_text(units: Sequence[str], layout: Layout) -> tuple[str, np.ndarray]:
    """The sentence's text and each unit's [start, end) character span in it."""
    lengths = np.fromiter((len(unit) for unit in units), dtype=np.int64, count=len(units))
    gap = len(joiner(layout))
    ends = np.cumsum(lengths + gap) - gap
    spans = np.stack([ends - lengths, ends], axis=1) if len(units) else np.zeros((0, 2), dtype=np.int64)
    return joiner(layout).join(units), spans


def as_layout(value: str) -> Layout:
    """A layout named in a config or a saved head, checked."""
    if value == "words":
        return "words"
    if value == "characters":
        return "characters"
    raise PrefineError(f"unknown layout '{value}'; use words or characters")


def detect_layout(units: Sequence[Sequence[str]]) -> Layout:
    """Characters when every unit is exactly one character (KLUE-NER, Chinese NER sets), words otherwise."""
    lengths = {len(unit) for sentence in units for unit in sentence}
    return "characters" if lengths == {1} else "words"


# ---------------------------------------------------------------------------------------------
# Readers


def _is_comment(line: str) -> bool:
    # "## klue-ner-v1_train_00000<TAB>sentence" and "# text = ..." are comments; "#<TAB>O" is a hashtag token.
    if not line.startswith("#"):
        return False
    fields = line.split("\t") if "\t" in line else line.split()
    return len(fields) < 2 or not _TAG_LIKE.match(fields[-1].strip())


def _read_columns(path: Path, tag_column: int, need_tags: bool = True) -> tuple[list[TaggedSentence], str]:
    sentences: list[TaggedSentence] = []
    units: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    separators: set[str] = set()
    widest = 0

    def close() -> None:
        if units:
            sentences.append(TaggedSentence(units.copy(), tags.copy() if len(tags) == len(units) else None, lines.copy()))
            units.clear()
            tags.clear()
            lines.clear()

    for number, line in iter_file_lines(path):
        if not line.strip():
            close()
            continue
        if _is_comment(line):
            continue
        tabbed = "\t" in line
        # Tabs keep a space token (" <TAB>O" in KLUE files); without tabs any whitespace separates.
        fields = line.split("\t") if tabbed else line.split()
        if fields[0].strip() == DOCUMENT_START:
            close()
            continue
        if len(fields) < 2 and not need_tags:
            units.append(fields[0].strip() or fields[0])
            lines.append(number)
            continue
        if len(fields) < 2:
            raise PrefineError(
                f"{path} line {number} has one column ('{line.strip()[:40]}'); "
                "each line needs a token and its tag separated by a tab or space"
            )
        widest = max(widest, len(fields))
        column = tag_column - 1 if tag_column > 0 else len(fields) - 1
        if column >= len(fields) or column == 0:
            raise PrefineError(
                f"{path} line {number} has {len(fields)} columns, so --tag-column {tag_column} points at no tag column; "
                "the token is column 1"
            )
        separators.add("tab" if tabbed else "space")
        token = fields[0]
        if tabbed and token.strip() and token != token.strip():
            token = token.strip()  # stray spaces around a word; a lone space stays a (character) token
        units.append(token)
        tags.append(fields[column].strip())
        lines.append(number)
    close()
    where = f"tag column {tag_column}" if tag_column > 0 else f"tag in the last of {widest} columns"
    return sentences, f"one token per line ({'/'.join(sorted(separators)) or 'tab'}-separated, {where})"


def _json_lists(record: dict, token_field: str | None, tag_field: str | None, where: str, need_tags: bool) -> tuple[str, str | None]:
    tokens = token_field or next((name for name in TOKEN_FIELDS if name in record), None)
    if tokens is None or tokens not in record:
        raise PrefineError(f"{where} has no token list ({token_field or ' / '.join(TOKEN_FIELDS)}); name the field with --token-field")
    tags = tag_field or next((name for name in TAG_FIELDS if name in record), None)
    if tags is None or tags not in record:
        if need_tags:
            raise PrefineError(f"{where} has no tag list ({tag_field or ' / '.join(TAG_FIELDS)}); name the field with --tag-field")
        tags = None
    return tokens, tags


def _read_jsonl(path: Path, token_field: str | None, tag_field: str | None, need_tags: bool) -> tuple[list[TaggedSentence], str]:
    sentences = []
    fields: tuple[str, str | None] | None = None
    for number, record in iter_jsonl(iter_file_lines(path), path, each_line="one object with token and tag lists"):
        if fields is None:
            fields = _json_lists(record, token_field, tag_field, f"{path} line {number}", need_tags)
        units = record.get(fields[0])
        tags = record.get(fields[1]) if fields[1] else None
        if not isinstance(units, list) or not all(isinstance(unit, str) for unit in units):
            raise PrefineError(f"{path} line {number}: '{fields[0]}' must be a list of strings")
        if fields[1] is not None:
            if not isinstance(tags, list) or len(tags) != len(units):
                raise PrefineError(f"{path} line {number}: '{fields[1]}' must be a list with one tag per token ({len(units)})")
            if any(not isinstance(tag, str) for tag in tags):
                raise PrefineError(
                    f"{path} line {number}: the tags are numbers, not names; "
                    "write tag names such as B-PER (a Hugging Face dataset folder keeps its names)"
                )
        if units:
            sentences.append(TaggedSentence(units, tags, [number] * len(units)))
    if fields is None:
        raise PrefineError(f"{path} holds no records; point at a file with data")
    return sentences, f"JSONL ({fields[0]}" + (f", {fields[1]})" if fields[1] else ")")


def _read_dataset(
    name: str, split: str, token_field: str | None, tag_field: str | None, need_tags: bool
) -> tuple[list[TaggedSentence], str, str]:

    # The same loader and name[:config][:split] syntax as corpora and the other tasks' data.
    dataset, source = load_dataset_source(name, split, streaming=False)
    if not dataset.num_rows:
        raise PrefineError(f"{source} holds no records; choose another split")
    tokens, tags = _json_lists(dict.fromkeys(dataset.column_names), token_field, tag_field, source, need_tags)
    names = None
    if tags is not None:
        feature = getattr(dataset.features[tags], "feature", None)
        names = getattr(feature, "names", None)
    sentences = []
    tag_lists = dataset[tags] if tags is not None else [None] * dataset.num_rows
    for row, (units, values) in enumerate(zip(dataset[tokens], tag_lists), start=1):
        if values is not None:
            if names is not None:
                values = [names[value] for value in values]
            elif any(not isinstance(value, str) for value in values):
                raise PrefineError(
                    f"{source} row {row}: '{tags}' holds numbers without label names (not a ClassLabel sequence); store tag names"
                )
        if units:
            sentences.append(TaggedSentence(list(units), values, [row] * len(units)))
    return (
        sentences,
        f"dataset columns {tokens}" + (f", {tags}" + (" (label names from the feature)" if names else "") if tags else ""),
        source,
    )


def read_tagged(
    source: str,
    layout: str = "auto",
    tag_column: int = 0,
    token_field: str | None = None,
    tag_field: str | None = None,
    split: str = "train",
    need_tags: bool = True,
) -> TaggedCorpus:
    """Read a CoNLL-style / character file, a JSONL file or a Hugging Face dataset into sentences of units and tags."""
    path = Path(source).expanduser()
    location = "line"
    if path.is_file():
        suffix = path.suffixes[-2].lower() if path.suffix.lower() == ".gz" and len(path.suffixes) > 1 else path.suffix.lower()
        if suffix in JSON_SUFFIXES:
            sentences, description = _read_jsonl(path, token_field, tag_field, need_tags)
        else:
            sentences, description = _read_columns(path, tag_column, need_tags)
        name = str(path)
    elif path.is_dir() or not (source.startswith((".", "/", "~")) or path.suffix):
        sentences, description, name = _read_dataset(source, split, token_field, tag_field, need_tags)
        location = "row"
    else:
        raise PrefineError(f"{path} does not exist; check the path")
    if not sentences:
        raise PrefineError(f"{name} holds no tagged sentences; point at a file with data")
    chosen = detect_layout([sentence.units for sentence in sentences]) if layout == "auto" else as_layout(layout)
    return TaggedCorpus(name, sentences, chosen, description, location)


# ---------------------------------------------------------------------------------------------
# Tags


def _starts_chunk_with_inside(tags: Sequence[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            return True
        previous = tag
    return False


def detect_scheme(tag_sequences: Sequence[Sequence[str]]) -> str:
    """IOBES / BILOU by their extra positions; IOB1 when an I- tag starts an entity; IOB2 otherwise."""
    positions = {tag[0] for tags in tag_sequences for tag in tags if tag != "O"}
    if positions & set("ES"):
        return "IOBES"
    if positions & set("LU"):
        return "BILOU"
    if any(_starts_chunk_with_inside(tags) for tags in tag_sequences):
        return "IOB1"
    return "IOB2"


def check_tags(corpus: TaggedCorpus, scheme: str) -> None:
    """Every tag is O or POSITION-TYPE with a position the scheme uses; anything else names its line."""
    allowed = _SCHEME_POSITIONS[scheme]
    for number, sentence in enumerate(corpus.sentences):
        for index, tag in enumerate(sentence.tags or []):
            if tag == "O":
                continue
            if len(tag) < 3 or tag[1] != "-" or tag[0] not in allowed:
                raise PrefineError(
                    f"{corpus.source} {corpus.where(number, index)} has the tag '{tag}', "
                    f"which is not O or {'/'.join(allowed.replace('O', ''))}-TYPE "
                    f"({scheme}); fix the tag or choose the scheme with --tag-scheme"
                )


def entity_type(tag: str) -> str:
    return tag[2:]


@dataclass
class TagSet:
    """The tags in id order: O first, then by entity type and position, so the same data always gives the same head."""

    names: list[str]
    scheme: str

    @classmethod
    def from_corpus(cls, corpus: TaggedCorpus, scheme: str) -> TagSet:
        order = {position: rank for rank, position in enumerate("BIESLU")}
        seen = {tag for sentence in corpus.sentences for tag in sentence.tags or []}
        entity_tags = sorted(seen - {"O"}, key=lambda tag: (entity_type(tag), order.get(tag[0], 9)))
        if not entity_tags:
            raise PrefineError(f"{corpus.source} has no entity tags (only O); a tagger needs examples of the entities to find")
        return cls(["O", *entity_tags], scheme)

    def ids(self, corpus: TaggedCorpus) -> list[np.ndarray]:
        """Tag ids per sentence; a tag training never saw is an error naming where it is."""
        index = {name: number for number, name in enumerate(self.names)}
        result = []
        for number, sentence in enumerate(corpus.sentences):
            tags = sentence.tags or []
            ids = [index.get(tag, -1) for tag in tags]
            if -1 in ids:
                unit = ids.index(-1)
                raise PrefineError(
                    f"{corpus.source} {corpus.where(number, unit)} has the tag '{tags[unit]}', which the training data never uses "
                    f"(tags: {', '.join(self.names)}); add such examples to the training data or fix the tag"
                )
            result.append(np.asarray(ids, dtype=np.int64))
        return result

    def inside_of(self, tag: str) -> str:
        """The tag of a later part of the same entity: I-TYPE (O stays O)."""
        return "O" if tag == "O" else f"I-{entity_type(tag)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id2label": {str(number): name for number, name in enumerate(self.names)},
            "label2id": {name: number for number, name in enumerate(self.names)},
            "tag_scheme": self.scheme,
        }

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> TagSet:
        id2label = values.get("id2label") or {}
        return cls([id2label[str(number)] for number in range(len(id2label))], values.get("tag_scheme", "IOB2"))


# ---------------------------------------------------------------------------------------------
# Alignment


@dataclass
class Alignment:
    """Word pieces of one sentence and how they sit on its units."""

    piece_ids: np.ndarray  # int32 [P]
    piece_unit: np.ndarray  # int64 [P]: the unit holding the piece's first character
    unit_anchor: np.ndarray  # int64 [U]: the unit's first piece, -1 if no piece starts in it
    unit_glued_to: np.ndarray  # int64 [U]: the unit whose piece also covers this one (character layout), else -1

    @property
    def is_anchor(self) -> np.ndarray:
        anchors = np.zeros(len(self.piece_ids), dtype=bool)
        anchors[self.unit_anchor[self.unit_anchor >= 0]] = True
        return anchors


def _align_one(ids: list[int], offsets: list[tuple[int, int]], spans: np.ndarray) -> Alignment:
    starts = np.fromiter((start for start, _ in offsets), dtype=np.int64, count=len(offsets))
    ends = np.fromiter((end for _, end in offsets), dtype=np.int64, count=len(offsets))
    unit_count = len(spans)
    # Units are in text order; a piece belongs to the last unit starting at or before its first
    # character (an empty unit shares its start with nothing a piece can start in).
    nonempty = spans[:, 1] > spans[:, 0]
    candidates = np.flatnonzero(nonempty)
    if len(candidates) and len(starts):
        piece_unit = candidates[np.maximum(np.searchsorted(spans[candidates, 0], starts, side="right") - 1, 0)]
    else:
        piece_unit = np.zeros(len(starts), dtype=np.int64)
    unit_anchor = np.full(unit_count, -1, dtype=np.int64)
    anchored_units, first_pieces = np.unique(piece_unit, return_index=True)  # pieces come in text order
    unit_anchor[anchored_units] = first_pieces
    unit_glued_to = np.full(unit_count, -1, dtype=np.int64)
    if len(starts) and unit_count:
        # A unit starting strictly inside a piece is covered by it (the "순신" of a character layout's "이순신" piece).
        covering = np.maximum(np.searchsorted(starts, spans[:, 0], side="right") - 1, 0)
        inside = (unit_anchor < 0) & nonempty & (spans[:, 0] > starts[covering]) & (spans[:, 0] < ends[covering])
        unit_glued_to[inside] = piece_unit[covering[inside]]
    return Alignment(np.asarray(ids, dtype=np.int32), piece_unit.astype(np.int64), unit_anchor, unit_glued_to)


def align(texts: Sequence[str], spans: Sequence[np.ndarray], tokenizer: Tokenizer) -> list[Alignment]:
    """Word pieces of each text (no [CLS]/[SEP]) mapped to the units at `spans` through the tokenizer's offsets."""
    alignments = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        encodings = tokenizer.encode_batch(list(texts[start : start + ENCODE_CHUNK]), add_special_tokens=False)
        for encoding, unit_spans in zip(encodings, spans[start : start + ENCODE_CHUNK]):
            alignments.append(_align_one(encoding.ids, encoding.offsets, unit_spans))
    return alignments


def unit_tags(alignment: Alignment, piece_tags: Sequence[str | None], scheme: str) -> list[str]:
    """One tag per unit from the tags predicted at anchor pieces (`piece_tags[p]`, None elsewhere).

    Glued units (characters inside a piece) continue the entity of the character that starts the
    piece; in IOBES/BILOU the piece's span is re-spelled so it stays well-formed (S-X over three
    characters becomes B-X I-X E-X). A unit without any piece (a space in the character layout)
    is inside an entity only when both of its neighbours are in that same entity.
    """
    count = len(alignment.unit_anchor)
    tags: list[str | None] = [None] * count
    for unit in range(count):
        anchor = alignment.unit_anchor[unit]
        if anchor >= 0:
            tags[unit] = piece_tags[anchor] or "O"
    glued_runs: dict[int, list[int]] = {}
    for glued in np.flatnonzero(alignment.unit_glued_to >= 0):
        glued_runs.setdefault(int(alignment.unit_glued_to[glued]), []).append(int(glued))
    closing = {"IOBES": ("S", "E"), "BILOU": ("U", "L")}.get(scheme)
    for head, rest in glued_runs.items():
        tag = tags[head] or "O"
        if tag == "O":
            for unit in rest:
                tags[unit] = "O"
            continue
        kind = entity_type(tag)
        for unit in rest:
            tags[unit] = f"I-{kind}"
        if closing is not None:
            single, end = closing
            if tag[0] in (single, end):  # the piece closes its entity: its last character must carry the end
                tags[head] = f"B-{kind}" if tag[0] == single else f"I-{kind}"
                tags[rest[-1]] = f"{end}-{kind}"
    continuing = {"IOB1": "I", "IOB2": "I", "IOBES": "IE", "BILOU": "IL"}[scheme]
    filled: list[str] = []
    for unit in range(count):
        unit_tag = tags[unit]
        if unit_tag is None:
            # The previous unit is already filled; the following ones are not yet.
            previous = filled[unit - 1] if unit else "O"
            following = next((tags[later] for later in range(unit + 1, count) if tags[later] is not None), "O")
            inside = (
                previous != "O"
                and previous[0] in "BI"
                and following is not None
                and following != "O"
                and following[0] in continuing
                and entity_type(following) == entity_type(previous)
            )
            unit_tag = f"I-{entity_type(previous)}" if inside else "O"
        filled.append(unit_tag)
    return filled


def piece_labels(alignment: Alignment, unit_ids: np.ndarray, tag_set: TagSet, label_all_pieces: bool) -> np.ndarray:
    """Training label per piece: the unit's tag on its anchor; later pieces IGNORE_LABEL, or I-TYPE with `label_all_pieces`.

    Later pieces never get a B- (or S-) tag: copying it would invent an entity per piece,
    which is what inflates scores with transformers' label_all_tokens.
    """
    labels = np.full(len(alignment.piece_ids), IGNORE_LABEL, dtype=np.int64)
    anchored = np.flatnonzero(alignment.unit_anchor >= 0)
    labels[alignment.unit_anchor[anchored]] = unit_ids[anchored]
    if label_all_pieces:
        index = {name: number for number, name in enumerate(tag_set.names)}
        inside = np.asarray([index.get(tag_set.inside_of(name), IGNORE_LABEL) for name in tag_set.names], dtype=np.int64)
        later = ~alignment.is_anchor
        labels[later] = inside[unit_ids[alignment.piece_unit[later]]]
    return labels


# ---------------------------------------------------------------------------------------------
# Windows


@dataclass
class Windows:
    """[CLS] pieces [SEP] windows of many sentences, stored flat: window w is input_ids[offsets[w]:offsets[w+1]]."""

    input_ids: np.ndarray  # int32
    labels: np.ndarray | None  # int64, IGNORE_LABEL where nothing is trained
    owned: np.ndarray  # bool: this position's piece is predicted from this window
    offsets: np.ndarray  # int64 [W + 1]
    sentence: np.ndarray  # int64 [W]
    first_piece: np.ndarray  # int64 [W]: sentence piece index at window position 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, indices: np.ndarray) -> Windows:
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[indices]
        new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        positions = np.arange(int(new_offsets[-1])) + np.repeat(self.offsets[indices] - new_offsets[:-1], lengths)
        return Windows(
            self.input_ids[positions],
            None if self.labels is None else self.labels[positions],
            self.owned[positions],
            new_offsets,
            self.sentence[indices],
            self.first_piece[indices],
        )


def window_starts(num_pieces: int, width: int, stride: int) -> list[int]:
    """Starts of the windows covering `num_pieces` pieces, `width` at a time, `stride` apart; the last one ends at the end."""
    if num_pieces <= width:
        return [0]
    starts = list(range(0, num_pieces - width, stride))
    starts.append(num_pieces - width)
    return starts


def owning_window(num_pieces: int, starts: list[int], width: int) -> np.ndarray:
    """For every piece, the window (index into `starts`) where it has the most context on its poorer side."""
    pieces = np.arange(num_pieces)
    begin = np.asarray(starts)[:, None]
    inside = (pieces >= begin) & (pieces < begin + width)
    context = np.minimum(pieces - begin, begin + width - 1 - pieces)
    return np.argmax(np.where(inside, context, -1), axis=0)


def make_windows(
    alignments: Sequence[Alignment],
    max_seq_length: int,
    stride: int,
    cls_id: int,
    sep_id: int,
    labels: Sequence[np.ndarray] | None = None,
) -> Windows:
    width = max_seq_length - 2
    id_parts, label_parts, owned_parts, lengths, sentences, firsts = [], [], [], [], [], []
    ignore = np.asarray([IGNORE_LABEL], dtype=np.int64)
    for number, alignment in enumerate(alignments):
        count = len(alignment.piece_ids)
        starts = window_starts(count, width, stride)
        owner = owning_window(count, starts, width)
        for window, start in enumerate(starts):
            stop = min(start + width, count)
            id_parts.append(np.concatenate([[cls_id], alignment.piece_ids[start:stop], [sep_id]]).astype(np.int32))
            mine = owner[start:stop] == window
            owned_parts.append(np.concatenate([[False], mine, [False]]))
            if labels is not None:
                window_labels = np.where(mine, labels[number][start:stop], IGNORE_LABEL)
                label_parts.append(np.concatenate([ignore, window_labels, ignore]))
            lengths.append(stop - start + 2)
            sentences.append(number)
            firsts.append(start)
    return Windows(
        input_ids=np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int32),
        labels=(np.concatenate(label_parts) if label_parts else np.zeros(0, dtype=np.int64)) if labels is not None else None,
        owned=np.concatenate(owned_parts) if owned_parts else np.zeros(0, dtype=bool),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        sentence=np.asarray(sentences, dtype=np.int64),
        first_piece=np.asarray(firsts, dtype=np.int64),
    )


@dataclass
class EncodedCorpus:
    """A corpus read, aligned and windowed: what training and evaluation need."""

    corpus: TaggedCorpus
    texts: list[str]
    spans: list[np.ndarray]
    alignments: list[Alignment]
    windows: Windows
    unit_ids: list[np.ndarray] | None = None  # gold tag ids per unit
    notes: list[str] = field(default_factory=list)


def encode_corpus(
    corpus: TaggedCorpus,
    tokenizer: Tokenizer,
    tag_set: TagSet | None,
    max_seq_length: int,
    stride: int,
    label_all_pieces: bool = False,
) -> EncodedCorpus:
    texts, spans = [], []
    for sentence in corpus.sentences:
        text, unit_spans = sentence_text(sentence.units, corpus.layout)
        texts.append(text)
        spans.append(unit_spans)
    alignments = align(texts, spans, tokenizer)
    unit_ids = tag_set.ids(corpus) if tag_set is not None and corpus.sentences[0].tags is not None else None
    labels = (
        [piece_labels(alignment, ids, tag_set, label_all_pieces) for alignment, ids in zip(alignments, unit_ids)]
        if unit_ids is not None and tag_set is not None
        else None
    )
    cls_id, sep_id = special_token_id(tokenizer, "[CLS]"), special_token_id(tokenizer, "[SEP]")
    windows = make_windows(alignments, max_seq_length, stride, cls_id, sep_id, labels)
    notes = []
    per_sentence = np.bincount(windows.sentence, minlength=len(alignments))
    if (per_sentence > 1).any():
        notes.append(
            f"{int((per_sentence > 1).sum())} sentences are longer than --max-seq-length {max_seq_length} and are read in "
            f"{int(per_sentence[per_sentence > 1].sum())} overlapping windows ({stride} pieces apart; nothing is cut)"
        )
    if unit_ids is not None:
        split, total = _entities_split_by_pieces(corpus, alignments)
        if split:
            notes.append(
                f"{split} of {total} entities begin or end inside a word piece (e.g. a name and its particle as one piece); "
                "their characters take the piece's tag, so they cannot be predicted exactly"
            )
    return EncodedCorpus(corpus, texts, spans, alignments, windows, unit_ids, notes)


def _entities_split_by_pieces(corpus: TaggedCorpus, alignments: Sequence[Alignment]) -> tuple[int, int]:
    """(entities with an edge inside a word piece, all entities): those the piece-level model cannot get exactly right."""

    split = total = 0
    for sentence, alignment in zip(corpus.sentences, alignments):
        glued = alignment.unit_glued_to
        for _, first, last in lenient_chunks(sentence.tags or []):
            total += 1
            if glued[first] >= 0 or (last + 1 < len(glued) and glued[last + 1] >= 0):
                split += 1
    return split, total


def report(corpus: TaggedCorpus, scheme: str, detected: bool) -> None:
    """The one line that says how a source was read, and which flags change it."""
    units = sum(len(sentence.units) for sentence in corpus.sentences)
    unit_name = "characters" if corpus.layout == "characters" else "words"
    how = "detected" if detected else "chosen"
    print(
        f"{corpus.source}: {len(corpus.sentences)} sentences, {units} {unit_name}; {corpus.description}; tags {scheme} ({how}; "
        "override with --layout, --tag-scheme, --tag-column, --token-field, --tag-field)",
        file=sys.stderr,
    )
