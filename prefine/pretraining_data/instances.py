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
no short_seq_prob is applied here.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, fields

import numpy as np

from prefine.pretraining_data.config import PretrainingDataConfig
from prefine.pretraining_data.shards import TokenShards

NSP_IS_NEXT = 0
NSP_RANDOM_NEXT = 1
NSP_IGNORED = -1
# Packing runs are cut into blocks of this many documents so memory stays bounded on huge runs.
PACKING_BLOCK_DOCUMENTS = 1024


@dataclass
class Instances:
    """Parallel int64 arrays, one entry per instance; segment A = tokens[a_start:a_end], B likewise."""

    a_start: np.ndarray
    a_end: np.ndarray
    b_start: np.ndarray
    b_end: np.ndarray
    nsp_label: np.ndarray

    def __len__(self) -> int:
        return len(self.a_start)

    def take(self, indices: np.ndarray | slice) -> Instances:
        return Instances(*(getattr(self, f.name)[indices] for f in fields(self)))


class _InstanceList:
    """Grows five typed arrays (8 bytes per value, unlike lists of Python ints) while building."""

    def __init__(self) -> None:
        self.columns = tuple(array("q") for _ in range(5))

    def add(self, a_start: int, a_end: int, b_start: int, b_end: int, nsp_label: int) -> None:
        for column, value in zip(self.columns, (a_start, a_end, b_start, b_end, nsp_label)):
            column.append(int(value))

    def to_instances(self) -> Instances:
        return Instances(*(np.frombuffer(column, dtype=np.int64).copy() for column in self.columns))


def build_instances(
    shards: TokenShards, doc_ids: np.ndarray, config: PretrainingDataConfig, rng: np.random.Generator
) -> Instances:
    """All instances of one pass over `doc_ids`, shuffled. Deterministic given the state of `rng`."""
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    sentence_counts = shards.document_sentence_counts()[doc_ids]
    built = _InstanceList()
    if config.objective == "mlm":
        packable = np.ones(len(doc_ids), dtype=bool)
    else:
        packable = sentence_counts == 1
        for position in np.flatnonzero(~packable):
            _add_sentence_pairs(shards, doc_ids, position, config, rng, built)
    for first, end in _runs_of_adjacent_documents(doc_ids, packable):
        _add_packed_sentences(shards, doc_ids[first:end], config.max_seq_length - 2, built)
    instances = _truncate(built.to_instances(), config.max_seq_length, rng)
    return instances.take(rng.permutation(len(instances)))


def _add_sentence_pairs(
    shards: TokenShards,
    doc_ids: np.ndarray,
    position: int,
    config: PretrainingDataConfig,
    rng: np.random.Generator,
    built: _InstanceList,
) -> None:
    """BERT's create_instances_from_document for doc_ids[position], with ranges instead of token lists."""
    document = int(doc_ids[position])
    first_sentence = int(shards.document_starts[document])
    num_sentences = int(shards.document_starts[document + 1]) - first_sentence
    starts = np.asarray(shards.sentence_starts[first_sentence : first_sentence + num_sentences + 1])
    max_tokens = config.max_seq_length - 3
    sentence = 0
    while sentence < num_sentences:
        target = max_tokens
        if rng.random() < config.short_seq_prob:
            target = int(rng.integers(2, max_tokens + 1))
        chunk_end = min(int(np.searchsorted(starts, starts[sentence] + target, side="left")), num_sentences)
        chunk_end = min(max(chunk_end, sentence + 2), num_sentences)
        chunk_sentences = chunk_end - sentence
        if chunk_sentences == 1:
            built.add(starts[sentence], starts[sentence + 1], 0, 0, NSP_IGNORED)
            break
        a_sentences = int(rng.integers(1, chunk_sentences))
        a_start, a_end = starts[sentence], starts[sentence + a_sentences]
        if len(doc_ids) == 1:
            # No other document to draw a random segment from: a label here could only be
            # "is next", which would teach a constant. Keep the text for MLM only.
            built.add(a_start, starts[chunk_end], 0, 0, NSP_IGNORED)
            sentence = chunk_end
        elif rng.random() < 0.5:
            b_start, b_end = _random_next_segment(shards, doc_ids, position, target - (a_end - a_start), rng)
            built.add(a_start, a_end, b_start, b_end, NSP_RANDOM_NEXT)
            sentence += a_sentences  # put the unused sentences back: they start the next chunk
        else:
            built.add(a_start, a_end, a_end, starts[chunk_end], NSP_IS_NEXT)
            sentence = chunk_end


def _random_next_segment(
    shards: TokenShards, doc_ids: np.ndarray, position: int, target_length: int, rng: np.random.Generator
) -> tuple[int, int]:
    """Token range of whole sentences from another document, from a random sentence on, of about target_length tokens."""
    other = int(rng.integers(len(doc_ids) - 1))
    document = int(doc_ids[other + (other >= position)])
    first_sentence = int(shards.document_starts[document])
    num_sentences = int(shards.document_starts[document + 1]) - first_sentence
    starts = np.asarray(shards.sentence_starts[first_sentence : first_sentence + num_sentences + 1])
    start_sentence = int(rng.integers(num_sentences))
    end_sentence = int(np.searchsorted(starts, starts[start_sentence] + max(target_length, 1), side="left"))
    end_sentence = min(max(end_sentence, start_sentence + 1), num_sentences)
    return int(starts[start_sentence]), int(starts[end_sentence])


def _runs_of_adjacent_documents(doc_ids: np.ndarray, packable: np.ndarray) -> list[tuple[int, int]]:
    """[first, end) positions in doc_ids of runs of packable documents that are adjacent in the cache."""
    if not len(doc_ids):
        return []
    continues = np.zeros(len(doc_ids), dtype=bool)
    continues[1:] = packable[1:] & packable[:-1] & (np.diff(doc_ids) == 1)
    continues[np.arange(len(doc_ids)) % PACKING_BLOCK_DOCUMENTS == 0] = False
    run_firsts = np.flatnonzero(~continues)
    run_ends = np.append(run_firsts[1:], len(doc_ids))
    return [(int(first), int(end)) for first, end in zip(run_firsts, run_ends) if packable[first]]


def _add_packed_sentences(shards: TokenShards, documents: np.ndarray, budget: int, built: _InstanceList) -> None:
    """Greedily pack whole sentences of adjacent `documents` into segments of <= budget tokens,
    counting one [SEP] token per document boundary crossed."""
    first_sentence = int(shards.document_starts[documents[0]])
    end_sentence = int(shards.document_starts[documents[-1] + 1])
    starts = np.asarray(shards.sentence_starts[first_sentence : end_sentence + 1])
    document_of_sentence = np.repeat(np.arange(len(documents)), shards.document_sentence_counts()[documents])
    # A segment of sentences [i, j) costs starts[j] - starts[i] tokens plus one separator per
    # document boundary inside it, i.e. end_cost[j] - start_cost[i] with these monotone costs.
    start_cost = starts[:-1] + document_of_sentence
    end_cost = starts[1:] + document_of_sentence  # end_cost[j - 1] belongs to boundary j
    sentence, num_sentences = 0, len(starts) - 1
    while sentence < num_sentences:
        end = int(np.searchsorted(end_cost, start_cost[sentence] + budget, side="right"))
        if end <= sentence:
            # One sentence longer than the whole budget: cut it into budget-sized windows.
            for window_start in range(int(starts[sentence]), int(starts[sentence + 1]), budget):
                built.add(window_start, min(window_start + budget, int(starts[sentence + 1])), 0, 0, NSP_IGNORED)
            sentence += 1
        else:
            built.add(starts[sentence], starts[end], 0, 0, NSP_IGNORED)
            sentence = end


def _truncate(instances: Instances, max_seq_length: int, rng: np.random.Generator) -> Instances:
    """BERT's truncate_seq_pair for all instances at once.

    BERT removes one token at a time from the longer segment (B when they are equal), each time
    from the front or the back with a coin flip. The number each segment loses therefore has a
    closed form, and the front/back split of n coin flips is Binomial(n, 1/2).
    """
    a_length = instances.a_end - instances.a_start
    b_length = instances.b_end - instances.b_start
    has_b = b_length > 0
    max_tokens = np.where(has_b, max_seq_length - 3, max_seq_length - 2)
    excess = np.maximum(a_length + b_length - max_tokens, 0)
    a_is_longer = a_length > b_length
    equalizing = np.minimum(excess, np.abs(a_length - b_length))
    alternating = excess - equalizing  # once equal, B loses first, then they take turns
    a_removed = np.where(a_is_longer, equalizing, 0) + alternating // 2
    b_removed = np.where(a_is_longer, 0, equalizing) + (alternating + 1) // 2
    a_front = rng.binomial(a_removed, 0.5)
    b_front = rng.binomial(b_removed, 0.5)
    return Instances(
        instances.a_start + a_front,
        instances.a_end - (a_removed - a_front),
        instances.b_start + np.where(has_b, b_front, 0),
        instances.b_end - np.where(has_b, b_removed - b_front, 0),
        instances.nsp_label,
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
