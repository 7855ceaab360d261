"""Word-piece vectors from the corpus's co-occurrence counts, to start a new model's embeddings.

`prefine pretrain --embedding-init cooccurrence` starts the word-embedding table from these
vectors instead of random rows. Masked LM on a CPU budget spends its first thousand-odd steps
learning word frequencies before the embeddings take on meaning (docs/pretraining-defaults.md);
a count-based model of the same text gets meaningful word vectors in one pass over it. The recipe
is the count-based one Levy, Goldberg & Dagan ("Improving Distributional Similarity with Lessons
Learned from Word Embeddings", 2015) found on par with word2vec:

- counts of each word piece beside each context piece within `window` positions, inside one
  document only, weighted 1/distance (word2vec's dynamic window, in expectation);
- contexts limited to the most frequent pieces, which keeps the matrix a few hundred megabytes
  at a 32k vocabulary and loses little: rare contexts carry few counts;
- positive PMI with the context distribution smoothed to the power 0.75;
- a truncated SVD, each row U * sqrt(S) (the symmetric weighting).

Rows are then scaled to the norm a random row of the model's initialiser has, so the vectors
enter the embedding sum at the size the position and segment rows expect. Pieces never seen in
the training documents keep their random rows. Only training documents are counted: the held-out
masked-LM documents stay unseen.
"""

from __future__ import annotations

import numpy as np
import torch

from prefine.pretraining_data.shards import TokenShards

DEFAULT_WINDOW = 5
DEFAULT_CONTEXTS = 2048
CONTEXT_SMOOTHING = 0.75
# Tokens per pass of the counting loop: the pair keys of one pass (int64) stay a few hundred MB.
COUNT_CHUNK_TOKENS = 1 << 22


def cooccurrence_counts(
    shards: TokenShards, doc_ids: np.ndarray, token_counts: np.ndarray, window: int = DEFAULT_WINDOW, contexts: int = DEFAULT_CONTEXTS
) -> tuple[torch.Tensor, np.ndarray]:
    """(float32 [vocab, C] distance-weighted co-occurrence counts, int64 [C] the context ids), C <= `contexts`.

    Pairs are counted in both directions, within `window` positions and within one of `doc_ids`.
    """
    vocab = shards.vocab_size
    seen = np.flatnonzero(token_counts > 0)
    # The most frequent pieces as contexts; ties broken by id so the choice is deterministic.
    order = seen[np.lexsort((seen, -token_counts[seen]))]
    context_ids = np.sort(order[:contexts])
    context_column = np.full(vocab, -1, dtype=np.int64)
    context_column[context_ids] = np.arange(len(context_ids))
    num_contexts = len(context_ids)
    counts = torch.zeros(vocab * num_contexts, dtype=torch.float32)

    starts = shards.document_token_starts()
    is_counted = np.zeros(shards.num_documents, dtype=bool)
    is_counted[np.asarray(doc_ids, dtype=np.int64)] = True
    for first in range(0, shards.num_tokens, COUNT_CHUNK_TOKENS):
        # Each pass reads `window` tokens past its end, so a pair that straddles two passes is
        # counted once, by the pass its left token belongs to.
        end = min(first + COUNT_CHUNK_TOKENS + window, shards.num_tokens)
        tokens = np.asarray(shards.tokens[first:end]).astype(np.int64)
        document = np.searchsorted(starts, np.arange(first, end), side="right") - 1
        left_count = min(COUNT_CHUNK_TOKENS, end - first)
        for distance in range(1, window + 1):
            if left_count <= 0 or distance >= len(tokens):
                break
            left = tokens[:left_count][: len(tokens) - distance]
            right = tokens[distance : distance + len(left)]
            same_document = document[: len(left)] == document[distance : distance + len(left)]
            keep = same_document & is_counted[document[: len(left)]]
            left, right = left[keep], right[keep]
            weight = 1.0 / distance
            for word, context in ((left, right), (right, left)):
                column = context_column[context]
                has_column = column >= 0
                keys = torch.from_numpy(word[has_column] * num_contexts + column[has_column])
                counts.index_add_(0, keys, torch.full((len(keys),), weight, dtype=torch.float32))
    return counts.view(vocab, num_contexts), context_ids


def ppmi(counts: torch.Tensor, smoothing: float = CONTEXT_SMOOTHING) -> torch.Tensor:
    """Positive pointwise mutual information of a [words, contexts] count matrix, contexts smoothed to `smoothing`.

    float32 throughout, worked in place: at a 32k vocabulary the matrix is 256 MB, and a float64
    copy per step would take several times that.
    """
    counts = counts.to(torch.float32)
    word_totals = counts.sum(dim=1, keepdim=True).clamp_min(1e-30)
    context_weights = counts.to(torch.float64).sum(dim=0).pow(smoothing)
    context_probability = (context_weights / context_weights.sum().clamp_min(1e-30)).to(torch.float32).clamp_min(1e-30)
    seen = counts > 0
    # log P(w, c) / (P(w) P_smoothed(c)), with P(w, c) / P(w) = n(w, c) / n(w).
    pmi = counts.clamp_min(1e-30).log_()
    pmi.sub_(word_totals.log()).sub_(context_probability.log())
    return pmi.clamp_min_(0.0).mul_(seen)


def cooccurrence_vectors(
    shards: TokenShards,
    doc_ids: np.ndarray,
    token_counts: np.ndarray,
    dim: int,
    row_norm: float,
    seed: int,
    window: int = DEFAULT_WINDOW,
    contexts: int = DEFAULT_CONTEXTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(float32 [vocab, dim] vectors, bool [vocab] which rows have one): PPMI + truncated SVD, rows scaled to `row_norm`.

    Deterministic for given inputs and `seed` (the randomised SVD draws from its own generator).
    When the corpus has fewer contexts than `dim`, the missing columns are zero.
    """
    counts, _ = cooccurrence_counts(shards, doc_ids, token_counts, window, contexts)
    matrix = ppmi(counts)
    covered = matrix.abs().sum(dim=1) > 0
    vectors = torch.zeros(shards.vocab_size, dim, dtype=torch.float32)
    rank = min(dim, matrix.shape[1], int(covered.sum()))
    if rank == 0:
        return vectors, covered
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # A few more directions than kept and four power iterations: the leading singular
        # vectors come out close to an exact SVD's at a fraction of its cost.
        left, singular, _ = torch.svd_lowrank(matrix[covered], q=min(rank + 10, *matrix[covered].shape), niter=4)
    rows = left[:, :rank] * singular[:rank].sqrt()
    norms = rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    vectors[covered, :rank] = rows / norms * row_norm
    return vectors, covered
