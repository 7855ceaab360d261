"""Pre-training instances (sentence pairs for MLM+NSP, packed sentences for MLM) as token ranges.

An instance never copies tokens: it is five integers, (a_start, a_end, b_start, b_end,
nsp_label), where A = tokens[a_start:a_end] and B = tokens[b_start:b_end] of the token cache
(b_start == b_end means a single segment). This works because consecutive sentences are
contiguous in the cache, and truncation only ever removes tokens from either end of a segment.
Collation later lays an instance out as [CLS] A [SEP] B [SEP] (or [CLS] A [SEP]) and inserts a
[SEP] wherever A crosses from one document into the next (only packed MLM segments do).

Objective "mlm+nsp" follows google-research/bert's create_pretraining_data.py:

  * Sentences of a document are packed into a chunk until it reaches the target length, and the
    chunk is split at a random sentence boundary into A and B. Real sentence boundaries (rather
    than arbitrary token spans) keep next-sentence prediction a question about content.
  * Half the time B is the rest of the chunk (label 0, "is next"); otherwise B is read from a
    random other document starting at a random sentence (label 1, "random"), and the chunk's
    unused sentences are put back, so they start the next chunk instead of being wasted.
  * With probability short_seq_prob the target length is a random shorter one: fine-tuning
    inputs are often short, and a model pre-trained only on full-length inputs transfers worse.
    BERT draws this once per document; we draw it per chunk, so the share of short instances is
    short_seq_prob whatever the document lengths.
  * The longer of A and B loses one token at a time, from its front or back at random (so
    neither end of a segment is a reliable cue), until the pair fits max_seq_length - 3.

Two deviations from BERT keep the NSP labels an exact fair coin:

  * A chunk takes at least two sentences whenever the document still has two, so it can be split.
  * A chunk that is one sentence (a document's last sentence left alone) cannot give a true next
    segment. BERT forces "random next" there, which skews the labels towards "random" by an
    amount that depends on document lengths; we emit it as an MLM-only single-segment instance
    with NSP label -1 (ignored by the loss) instead.

Single-sentence documents (e.g. a corpus of short reviews, one per line) cannot give a true next
segment either. Under "mlm+nsp" runs of consecutive single-sentence documents are packed
RoBERTa-style into MLM-only instances with NSP label -1, and `nsp_coverage_warning` tells the
user when such documents dominate: NSP then trains only on the multi-sentence documents, and
`--objective mlm` is the right choice for such a corpus.

Objective "mlm" is RoBERTa's FULL-SENTENCES: whole sentences are packed contiguously up to
max_seq_length - 2 tokens, crossing document boundaries with a [SEP] between documents (the
separator costs one token of the budget), as one segment with NSP label -1. Packing crosses only
between documents that are adjacent in the cache and both in `doc_ids`, so training never reads
held-out text. A sentence longer than the budget is cut into budget-sized windows. Like RoBERTa,
no short_seq_prob is applied here. Objective "electra" uses the same packed instances.
`split_at_documents` cuts packed instances back into one piece per document, for the
separate_documents layout (one row per document, the same text per batch).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from prefine.labels import IGNORE_NSP
from prefine.pretraining_data.config import PretrainingDataConfig
from prefine.pretraining_data.shards import TokenShards

NSP_IS_NEXT = 0
NSP_RANDOM_NEXT = 1
# Packing runs are cut every this many document positions, so packing can work through the
# documents in bounded pieces (PACKING_PIECE_DOCUMENTS, a multiple of it) on huge corpora.
PACKING_BLOCK_DOCUMENTS = 1024
PACKING_PIECE_DOCUMENTS = 64 * PACKING_BLOCK_DOCUMENTS
# Sentence pairs are built for this many documents at a time, and truncated this many instances
# at a time, so temporary arrays stay bounded however large the corpus is.
PAIR_PIECE_DOCUMENTS = 1 << 16
TRUNCATE_PIECE_INSTANCES = 1 << 18


@dataclass
class Instances:
    """Parallel arrays, one entry per instance; segment A = tokens[a_start:a_end], B likewise.

    Token positions are int64 (a corpus may pass 2^31 tokens), the NSP label int8: 33 bytes per
    instance, the only part of an epoch's data that grows with the corpus.
    """

    a_start: np.ndarray
    a_end: np.ndarray
    b_start: np.ndarray
    b_end: np.ndarray
    nsp_label: np.ndarray

    def __len__(self) -> int:
        return len(self.a_start)

    def take(self, indices: np.ndarray | slice) -> Instances:
        return Instances(*(getattr(self, f.name)[indices] for f in fields(self)))

    def shuffle_(self, permutation: np.ndarray) -> Instances:
        """Reorder in place, one field at a time, so the epoch's instances are never held twice."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[permutation])
        return self


class _InstanceColumns:
    """Instances collected piece by piece, then joined one field at a time (the pieces of a
    field are dropped as soon as it is joined), which keeps the peak near the final size."""

    def __init__(self) -> None:
        self.pieces: dict[str, list[np.ndarray]] = {f.name: [] for f in fields(Instances)}

    def add(self, a_start: np.ndarray, a_end: np.ndarray, b_start=None, b_end=None, nsp_label=IGNORE_NSP) -> None:
        """Append instances; no B (None) means single-segment, a scalar label applies to all."""
        count = len(a_start)
        no_b = np.zeros(count, dtype=np.int64)
        for name, values in (
            ("a_start", a_start),
            ("a_end", a_end),
            ("b_start", no_b if b_start is None else b_start),
            ("b_end", no_b if b_end is None else b_end),
            ("nsp_label", np.broadcast_to(np.asarray(nsp_label, dtype=np.int8), (count,))),
        ):
            self.pieces[name].append(values)

    def join(self) -> Instances:
        joined = {}
        for name, pieces in self.pieces.items():
            dtype = np.int8 if name == "nsp_label" else np.int64
            joined[name] = np.concatenate(pieces).astype(dtype, copy=False) if pieces else np.zeros(0, dtype=dtype)
            pieces.clear()
        return Instances(**joined)


def build_instances(shards: TokenShards, doc_ids: np.ndarray, config: PretrainingDataConfig, rng: np.random.Generator) -> Instances:
    """All instances of one pass over `doc_ids`, shuffled. Deterministic given the state of `rng`.

    Runs at numpy speed over all documents at once (a Python loop per instance would make the
    rebuild at every epoch take minutes on a large corpus).
    """
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    built = _InstanceColumns()
    if not config.sentence_pairs:
        packable = np.ones(len(doc_ids), dtype=bool)
    else:
        packable = shards.document_sentence_counts()[doc_ids] == 1
        for first in range(0, len(doc_ids), PAIR_PIECE_DOCUMENTS):
            positions = np.flatnonzero(~packable[first : first + PAIR_PIECE_DOCUMENTS]) + first
            _add_sentence_pairs(shards, doc_ids, positions, config, rng, built)
    for first in range(0, len(doc_ids), PACKING_PIECE_DOCUMENTS):
        positions = np.flatnonzero(packable[first : first + PACKING_PIECE_DOCUMENTS]) + first
        _add_packed_sentences(shards, doc_ids, positions, config.max_seq_length - 2, built)
    instances = built.join()
    for first in range(0, len(instances), TRUNCATE_PIECE_INSTANCES):
        _truncate_(instances.take(slice(first, first + TRUNCATE_PIECE_INSTANCES)), config.max_seq_length, rng)
    return instances.shuffle_(rng.permutation(len(instances)))


def _add_sentence_pairs(
    shards: TokenShards,
    doc_ids: np.ndarray,
    positions: np.ndarray,
    config: PretrainingDataConfig,
    rng: np.random.Generator,
    built: _InstanceColumns,
) -> None:
    """BERT's create_instances_from_document for the documents doc_ids[positions], with token ranges.

    Every round takes the next chunk of every document that still has sentences left, so the
    work is a few array operations per round rather than Python per instance; a document is
    done once its cursor (a global sentence index) reaches its end.
    """
    sentence_starts = np.asarray(shards.sentence_starts)
    max_tokens = config.max_seq_length - 3
    cursor = shards.document_starts[doc_ids[positions]]
    document_end = shards.document_starts[doc_ids[positions] + 1]
    while len(cursor):
        count = len(cursor)
        target = np.full(count, max_tokens, dtype=np.int64)
        short = rng.random(count) < config.short_seq_prob
        target[short] = rng.integers(2, max_tokens + 1, int(short.sum()))
        chunk_end = np.searchsorted(sentence_starts, sentence_starts[cursor] + target, side="left")
        chunk_end = np.minimum(np.maximum(np.minimum(chunk_end, document_end), cursor + 2), document_end)

        # A document's last sentence left alone cannot be split into A and B: MLM only.
        lone = chunk_end - cursor == 1
        built.add(sentence_starts[cursor[lone]], sentence_starts[cursor[lone] + 1])
        keep = ~lone
        cursor, document_end, chunk_end, target, here = cursor[keep], document_end[keep], chunk_end[keep], target[keep], positions[keep]
        a_end_sentence = cursor + rng.integers(1, chunk_end - cursor)
        a_start, a_end = sentence_starts[cursor], sentence_starts[a_end_sentence]
        if len(doc_ids) == 1:
            # No other document to draw a random segment from: a label here could only be
            # "is next", which would teach a constant. Keep the text for MLM only.
            built.add(a_start, sentence_starts[chunk_end])
            cursor = chunk_end
        else:
            random_next = rng.random(len(cursor)) < 0.5
            b_start = np.where(random_next, 0, a_end)
            b_end = sentence_starts[chunk_end]
            if random_next.any():
                b_start[random_next], b_end[random_next] = _random_next_segments(
                    shards, sentence_starts, doc_ids, here[random_next], (target - (a_end - a_start))[random_next], rng
                )
            built.add(a_start, a_end, b_start, b_end, np.where(random_next, NSP_RANDOM_NEXT, NSP_IS_NEXT))
            # Put the unused sentences of a random-next chunk back: they start the next chunk.
            cursor = np.where(random_next, a_end_sentence, chunk_end)
        active = cursor < document_end
        cursor, document_end, positions = cursor[active], document_end[active], here[active]


def _random_next_segments(
    shards: TokenShards,
    sentence_starts: np.ndarray,
    doc_ids: np.ndarray,
    positions: np.ndarray,
    target_lengths: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Token ranges of whole sentences from another document than doc_ids[positions], each from a
    random sentence on and of about target_lengths tokens."""
    other = rng.integers(len(doc_ids) - 1, size=len(positions))
    documents = doc_ids[other + (other >= positions)]
    first_sentence = shards.document_starts[documents]
    end_sentence = shards.document_starts[documents + 1]
    start = first_sentence + rng.integers(end_sentence - first_sentence)
    end = np.searchsorted(sentence_starts, sentence_starts[start] + np.maximum(target_lengths, 1), side="left")
    end = np.minimum(np.maximum(end, start + 1), end_sentence)
    return sentence_starts[start], sentence_starts[end]


def _add_packed_sentences(shards: TokenShards, doc_ids: np.ndarray, positions: np.ndarray, budget: int, built: _InstanceColumns) -> None:
    """Greedily pack whole sentences of the documents doc_ids[positions] into segments of <= budget
    tokens, counting one [SEP] token per document boundary crossed.

    A segment only runs on into the next document when that document is next both in the cache
    (so the segment is one token range) and in `positions` (so held-out text never leaks in), and
    never across a multiple of PACKING_BLOCK_DOCUMENTS positions.
    """
    if not len(positions):
        return
    documents = doc_ids[positions]
    sentence_starts = np.asarray(shards.sentence_starts)
    counts = shards.document_starts[documents + 1] - shards.document_starts[documents]
    document_of, within = ragged_indices(counts)
    sentences = shards.document_starts[documents][document_of] + within  # global ids, in packing order
    lengths = sentence_starts[sentences + 1] - sentence_starts[sentences]

    continues_run = np.zeros(len(documents), dtype=bool)
    continues_run[1:] = (np.diff(positions) == 1) & (np.diff(documents) == 1) & (positions[1:] % PACKING_BLOCK_DOCUMENTS != 0)
    # Lay the sentences on one monotone axis where a segment [i, j) costs end[j - 1] - begin[i]:
    # its tokens, plus one per document boundary inside a run (the [SEP]), while the gap between
    # runs is wider than the budget, so no segment can span two runs.
    gap = np.where(within == 0, np.where(continues_run[document_of], 1, budget + 1), 0)
    end = np.cumsum(lengths + gap)
    begin = end - lengths
    next_first = np.searchsorted(end, begin + budget, side="right")
    too_long = next_first <= np.arange(len(sentences))  # one sentence longer than the whole budget
    next_first[too_long] = np.flatnonzero(too_long) + 1

    # Following the chain from the first sentence is inherently sequential, but only a list
    # lookup per segment.
    segment_firsts, links, sentence, total = [], next_first.tolist(), 0, len(sentences)
    while sentence < total:
        segment_firsts.append(sentence)
        sentence = links[sentence]
    firsts = np.asarray(segment_firsts, dtype=np.int64)
    lasts = next_first[firsts] - 1
    a_start = sentence_starts[sentences[firsts]]
    a_end = sentence_starts[sentences[lasts] + 1]

    # A sentence longer than the budget is cut into budget-sized windows.
    window_counts = np.where(too_long[firsts], -(-(a_end - a_start) // budget), 1)
    rows, window = ragged_indices(window_counts)
    window_start = a_start[rows] + window * budget
    window_end = np.where(too_long[firsts][rows], np.minimum(window_start + budget, a_end[rows]), a_end[rows])
    built.add(window_start, window_end)


def documents_spanned(instances: Instances, document_token_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last document each instance's segment A reads (they differ only for packed instances)."""
    first = np.searchsorted(document_token_starts, instances.a_start, side="right") - 1
    last = np.searchsorted(document_token_starts, instances.a_end - 1, side="right") - 1
    return first, last


def split_at_documents(instances: Instances, document_token_starts: np.ndarray) -> tuple[Instances, np.ndarray]:
    """Cut packed instances where they cross a document boundary: one piece per document.

    Returns the pieces (in instance order, then document order) and, for each piece, the index
    of the instance it came from. Pieces keep the packing budget of their instance, so a batch
    of instances still holds the same text however it is laid out; only segment A is cut
    (packed instances have no B).
    """
    first_document, last_document = documents_spanned(instances, document_token_starts)
    instance_of_piece, within = ragged_indices(last_document - first_document + 1)
    document = first_document[instance_of_piece] + within
    a_start = np.maximum(instances.a_start[instance_of_piece], document_token_starts[document])
    a_end = np.minimum(instances.a_end[instance_of_piece], document_token_starts[document + 1])
    no_b = np.zeros(len(a_start), dtype=np.int64)
    return Instances(a_start, a_end, no_b, no_b.copy(), instances.nsp_label[instance_of_piece]), instance_of_piece


def ragged_indices(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, index within row) for every element of rows with the given lengths, without a Python loop."""
    rows = np.repeat(np.arange(len(lengths)), lengths)
    row_firsts = np.cumsum(lengths) - lengths
    return rows, np.arange(len(rows)) - row_firsts[rows]


def _truncate_(instances: Instances, max_seq_length: int, rng: np.random.Generator) -> Instances:
    """BERT's truncate_seq_pair for all instances at once, in place (views write through).

    BERT removes one token at a time from the longer segment (B when they are equal), each time
    from the front or the back with a coin flip. The number each segment loses therefore has a
    closed form, and the front/back split of n coin flips is Binomial(n, 1/2).
    """
    a_length = instances.a_end - instances.a_start
    b_length = instances.b_end - instances.b_start
    has_b = b_length > 0
    excess = a_length + b_length - np.where(has_b, max_seq_length - 3, max_seq_length - 2)
    np.maximum(excess, 0, out=excess)
    a_is_longer = a_length > b_length
    equalizing = np.minimum(excess, np.abs(a_length - b_length))
    del a_length, b_length
    alternating = excess - equalizing  # once equal, B loses first, then they take turns
    del excess
    a_removed = np.where(a_is_longer, equalizing, 0) + alternating // 2
    b_removed = np.where(a_is_longer, 0, equalizing) + (alternating + 1) // 2
    del a_is_longer, equalizing, alternating
    a_front = rng.binomial(a_removed, 0.5)
    b_front = rng.binomial(b_removed, 0.5)
    instances.a_start += a_front
    instances.a_end -= a_removed - a_front
    del a_removed, a_front
    instances.b_start += np.where(has_b, b_front, 0)
    instances.b_end -= np.where(has_b, b_removed - b_front, 0)
    return instances


# A sequence at least this many times the median document length is mostly packing: the model
# attends across several unrelated documents and pays for long attention rows to read short texts.
LONG_SEQUENCE_FACTOR = 5


def sequence_length_warning(shards: TokenShards, doc_ids: np.ndarray, max_seq_length: int) -> str | None:
    """The message to show when max_seq_length is far above the corpus's typical document, else None.

    Documents shorter than a sequence are packed (under "mlm", and under "mlm+nsp" for
    single-sentence documents), so no position is padding; but each sequence then joins several
    unrelated documents, attention across them teaches nothing, and its cost grows with the
    sequence length. The warning says what issue 15's benchmark found rather than promising a
    speed-up: on a 2-core CPU the shorter sequences' smaller matrices cost more than the
    attention they save.
    """
    starts = shards.document_token_starts()
    ids = np.asarray(doc_ids, dtype=np.int64)
    if len(ids) == 0:
        return None
    median = float(np.median(starts[ids + 1] - starts[ids]))
    if median <= 0 or max_seq_length < LONG_SEQUENCE_FACTOR * (median + 2):
        return None
    suggestion = 64 if median + 2 <= 32 else 128
    if suggestion >= max_seq_length:
        return None
    return (
        f"the median training document has {median:.0f} tokens, far below --max-seq-length {max_seq_length}: each sequence packs "
        f"about {max_seq_length / (median + 2):.0f} unrelated documents. --max-seq-length {suggestion} spends less attention "
        "across them (fine-tuning inputs longer than that would meet untrained position embeddings); on a 2-core CPU at 15 "
        "minutes it read fewer tokens/s and fine-tuned no better (benchmarks/README.md); it saves more where attention is a "
        "larger share of the step, as on GPUs."
    )


def nsp_coverage_warning(shards: TokenShards, doc_ids: np.ndarray) -> str | None:
    """The message to show under mlm+nsp when single-sentence documents are the majority, else None."""
    counts = shards.document_sentence_counts()[np.asarray(doc_ids, dtype=np.int64)]
    single = int((counts == 1).sum())
    if single * 2 <= len(counts):
        return None
    multi = len(counts) - single
    if multi == 0:
        nsp_part = "no document has two or more sentences, so next-sentence prediction gets no examples at all"
    else:
        nsp_part = f"next-sentence prediction is trained only on the {multi:,} multi-sentence documents"
    return (
        f"{single:,} of {len(counts):,} training documents have a single sentence; under --objective mlm+nsp they are "
        f"packed into MLM-only sequences (NSP label ignored) and {nsp_part}. "
        "For a corpus of one-sentence documents (e.g. one review per line) --objective mlm is the right choice."
    )
