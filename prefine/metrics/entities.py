"""Entity-level precision, recall and F1 of tag sequences, token accuracy and KLUE's character-level F1.

Named-entity results are only comparable when everyone reads entities out of tags the same
way. Two readings are in use, and both are here, equal to the `seqeval` package (a test checks
it to 1e-9 on generated sequences, ill-formed ones included):

* **lenient** (conlleval's rules, seqeval's default mode). Whatever the scheme, a chunk starts
  at B-/S- tags, at an I-/E- tag that does not continue a chunk of its type, and at any change
  of type; `I-PER I-PER` is one entity even without its B-. Sentences are read as one stream
  with an `O` between them, exactly as conlleval and seqeval do (which matters only for tags
  outside B/I/E/S/O, such as a tag starting with '.').
* **strict** (seqeval's `mode="strict"` with a scheme such as IOB2): an entity must be spelled
  exactly as the scheme says (IOB2: B-X followed by I-X...); an I- that starts nowhere is not an
  entity, and in IOBES a B-X I-X never closed by E-X is not one either.

Scores are micro-averaged over entities (every entity counts once) and reported per type.
KLUE-NER adds a character-level macro F1: per-character tag classification scored per tag
with scikit-learn's macro F1 (zero_division=1) over every tag of the label set, as KLUE's
baseline code computes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

# ---------------------------------------------------------------------------------------------
# Lenient (conlleval) chunks

_ALWAYS_CLOSED_AFTER = frozenset("ES")  # single-token and end tags close their chunk
_CLOSING_PAIRS = frozenset({("B", "B"), ("B", "S"), ("B", "O"), ("I", "B"), ("I", "S"), ("I", "O")})
_OPENING_PAIRS = frozenset({("E", "E"), ("E", "I"), ("S", "E"), ("S", "I"), ("O", "E"), ("O", "I")})
_OPENING_TAGS = frozenset("BS")
_TYPELESS = frozenset("O.")  # conlleval's "no chunk here" markers: a type change after them opens or closes nothing


def _lenient_parts(tag: str) -> tuple[str, str]:
    # conlleval reads the first character as the position and everything after the first
    # hyphen as the type ("_" when there is none, as for "O").
    return tag[:1], tag[1:].split("-", 1)[-1] or "_"


def lenient_chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of every chunk, positions inclusive, read with conlleval's rules."""
    chunks: list[tuple[str, int, int]] = []
    previous_position, previous_type, begin = "O", "", 0
    for index, tag in enumerate([*tags, "O"]):
        position, kind = _lenient_parts(tag)
        if (
            previous_position in _ALWAYS_CLOSED_AFTER
            or (previous_position, position) in _CLOSING_PAIRS
            or (previous_position not in _TYPELESS and previous_type != kind)
        ):
            chunks.append((previous_type, begin, index - 1))
        if (
            position in _OPENING_TAGS
            or (previous_position, position) in _OPENING_PAIRS
            or (position not in _TYPELESS and previous_type != kind)
        ):
            begin = index
        previous_position, previous_type = position, kind
    return chunks


def _stream(sequences: Iterable[Sequence[str]]) -> list[str]:
    stream: list[str] = []
    for tags in sequences:
        stream.extend(tags)
        stream.append("O")
    return stream


# ---------------------------------------------------------------------------------------------
# Strict chunks

SchemeName = Literal["IOB1", "IOB2", "IOBES", "BILOU"]
_ANY, _SAME, _DIFFERENT = "any", "same", "different"


@dataclass(frozen=True)
class _Grammar:
    """How a scheme spells an entity: (previous positions, current positions, type relation) rules."""

    allowed: str
    starts: tuple[tuple[str, str, str], ...]
    continues: tuple[tuple[str, str, str], ...]
    closes: tuple[tuple[str, str, str], ...]


_EVERY = "IOBESUL"
GRAMMARS: dict[str, _Grammar] = {
    "IOB1": _Grammar(
        "IOB",
        starts=(("O", "I", _ANY), ("I", "I", _DIFFERENT), ("B", "I", _ANY), ("I", "B", _SAME), ("B", "B", _SAME)),
        continues=(("B", "I", _SAME), ("I", "I", _SAME)),
        closes=(("I", "I", _DIFFERENT), ("I", "O", _ANY), ("I", "B", _ANY), ("B", "O", _ANY), ("B", "I", _DIFFERENT), ("B", "B", _SAME)),
    ),
    "IOB2": _Grammar(
        "IOB",
        starts=((_EVERY, "B", _ANY),),
        continues=(("B", "I", _SAME), ("I", "I", _SAME)),
        closes=(("I", "O", _ANY), ("I", "I", _DIFFERENT), ("I", "B", _ANY), ("B", "O", _ANY), ("B", "I", _DIFFERENT), ("B", "B", _ANY)),
    ),
    "IOBES": _Grammar(
        "IOBES",
        starts=((_EVERY, "B", _ANY), (_EVERY, "S", _ANY)),
        continues=(("B", "I", _SAME), ("B", "E", _SAME), ("I", "I", _SAME), ("I", "E", _SAME)),
        closes=(("S", _EVERY, _ANY), ("E", _EVERY, _ANY)),
    ),
    "BILOU": _Grammar(
        "BILOU",
        starts=((_EVERY, "B", _ANY), (_EVERY, "U", _ANY)),
        continues=(("B", "I", _SAME), ("B", "L", _SAME), ("I", "I", _SAME), ("I", "L", _SAME)),
        closes=(("U", _EVERY, _ANY), ("L", _EVERY, _ANY)),
    ),
}


def _strict_parts(tag: str) -> tuple[str, str]:
    if not tag or tag[0] not in _EVERY:
        raise ValueError(f"tag '{tag}' does not start with one of {', '.join(_EVERY)}")
    return tag[0], tag[1:].strip("-") or "_"


def _matches(rules: tuple[tuple[str, str, str], ...], previous: tuple[str, str], current: tuple[str, str]) -> bool:
    for previous_positions, current_positions, relation in rules:
        if previous[0] in previous_positions and current[0] in current_positions:
            if relation == _ANY or (relation == _SAME) == (previous[1] == current[1]):
                return True
    return False


def strict_chunks(tags: Sequence[str], scheme: str = "IOB2") -> list[tuple[str, int, int]]:
    """(type, start, end) of every well-formed entity, end exclusive; a tag the scheme does not allow is a ValueError."""
    grammar = GRAMMARS[scheme]
    parsed = [_strict_parts(tag) for tag in tags] + [("O", "_")]
    for tag, (position, _) in zip(tags, parsed):
        if position not in grammar.allowed:
            raise ValueError(f"tag '{tag}' is not allowed in {scheme} (positions {', '.join(grammar.allowed)})")
    chunks: list[tuple[str, int, int]] = []
    index, previous = 0, ("O", "_")
    while index < len(parsed):
        current = parsed[index]
        if _matches(grammar.starts, previous, current):
            end = index + 1
            while end < len(parsed) and _matches(grammar.continues, parsed[end - 1], parsed[end]):
                end += 1
            # The appended O never continues an entity, so `end` always points at a real token or at it.
            if _matches(grammar.closes, parsed[end - 1], parsed[end]):
                chunks.append((current[1], index, end))
            index = end
        else:
            index += 1
        previous = parsed[index - 1]
    return chunks


# ---------------------------------------------------------------------------------------------
# Scores


@dataclass
class TypeCounts:
    gold: int = 0
    predicted: int = 0
    correct: int = 0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        # From precision and recall (not 2c / (g + p)), as seqeval computes it, so the floats agree.
        precision, recall = self.precision, self.recall
        return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass
class EntityScores:
    """Entity counts per type; micro scores over all of them, macro as the unweighted mean over types."""

    mode: str  # "lenient" or "strict IOB2" etc.
    per_type: dict[str, TypeCounts] = field(default_factory=dict)

    @property
    def total(self) -> TypeCounts:
        counts = TypeCounts()
        for one in self.per_type.values():
            counts.gold += one.gold
            counts.predicted += one.predicted
            counts.correct += one.correct
        return counts

    @property
    def precision(self) -> float:
        return self.total.precision

    @property
    def recall(self) -> float:
        return self.total.recall

    @property
    def f1(self) -> float:
        return self.total.f1

    @property
    def macro_f1(self) -> float:
        return sum(one.f1 for one in self.per_type.values()) / len(self.per_type) if self.per_type else 0.0


def _count(gold: set[tuple], predicted: set[tuple], mode: str) -> EntityScores:
    scores = EntityScores(mode)
    for kind in sorted({entity[0] for entity in gold} | {entity[0] for entity in predicted}):
        gold_of_type = {entity for entity in gold if entity[0] == kind}
        predicted_of_type = {entity for entity in predicted if entity[0] == kind}
        scores.per_type[kind] = TypeCounts(len(gold_of_type), len(predicted_of_type), len(gold_of_type & predicted_of_type))
    return scores


def _check_lengths(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted)):
        raise ValueError("gold and predicted tags must have the same number of sequences and of tags in each")


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], scheme: str | None = None) -> EntityScores:
    """Entity P/R/F1: lenient (conlleval) with `scheme=None`, else strict in that scheme (IOB1, IOB2, IOBES, BILOU)."""
    _check_lengths(gold, predicted)
    if scheme is None:
        return _count(set(lenient_chunks(_stream(gold))), set(lenient_chunks(_stream(predicted))), "lenient")
    gold_entities = {(kind, number, start, end) for number, tags in enumerate(gold) for kind, start, end in strict_chunks(tags, scheme)}
    predicted_entities = {
        (kind, number, start, end) for number, tags in enumerate(predicted) for kind, start, end in strict_chunks(tags, scheme)
    }
    return _count(gold_entities, predicted_entities, f"strict {scheme}")


def token_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """The share of tags predicted exactly (O included)."""
    _check_lengths(gold, predicted)
    total = sum(len(tags) for tags in gold)
    correct = sum(g == p for gold_tags, predicted_tags in zip(gold, predicted) for g, p in zip(gold_tags, predicted_tags))
    return correct / total if total else 0.0


def tag_macro_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], labels: Sequence[str]) -> float:
    """Macro F1 over `labels` of per-position tag classification; a tag never gold nor predicted scores 1.

    This is KLUE-NER's character-level F1 when the positions are characters (scikit-learn's
    f1_score(average="macro", labels=every tag, zero_division=1)).
    """
    _check_lengths(gold, predicted)
    counts = {label: [0, 0, 0] for label in labels}  # true positives, false positives, false negatives
    for gold_tags, predicted_tags in zip(gold, predicted):
        for g, p in zip(gold_tags, predicted_tags):
            if g == p:
                if g in counts:
                    counts[g][0] += 1
                continue
            if p in counts:
                counts[p][1] += 1
            if g in counts:
                counts[g][2] += 1
    scores = [2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0 for tp, fp, fn in counts.values()]
    return sum(scores) / len(scores) if scores else 0.0


def format_entity_table(scores: EntityScores, title: str) -> str:
    """Per-type counts and scores, then the micro total (what `prefine evaluate` prints)."""
    width = max([len("overall")] + [len(kind) for kind in scores.per_type])
    lines = [title, f"  {'type':<{width}}  {'gold':>6} {'pred':>6} {'correct':>7}  {'precision':>9} {'recall':>6} {'F1':>6}"]
    rows = [*scores.per_type.items(), ("overall", scores.total)]
    for kind, counts in rows:
        lines.append(
            f"  {kind:<{width}}  {counts.gold:>6} {counts.predicted:>6} {counts.correct:>7}  "
            f"{100 * counts.precision:>9.2f} {100 * counts.recall:>6.2f} {100 * counts.f1:>6.2f}"
        )
    return "\n".join(lines)
