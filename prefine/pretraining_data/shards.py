"""Tokenized corpus on disk as memory-mapped arrays, built once and cached by content key.

The corpus is tokenized in batches of documents with the Rust tokenizer (parallel over
sentences) and appended to three flat files, so memory stays bounded by one batch however
large the corpus is, and later stages read any sentence with one slice of a memory map:

    tokens.bin           token ids of every sentence, back to back (uint16, or uint32 for big vocabularies)
    sentence_starts.bin  int64 [num_sentences + 1]: sentence s is tokens[sentence_starts[s]:sentence_starts[s + 1]]
    document_starts.bin  int64 [num_documents + 1]: document d is sentences document_starts[d]..document_starts[d + 1]
    meta.json            dtype, counts, vocabulary size and the cache key it was built for

Because sentences of a document, and documents, follow each other in `tokens`, any run of
consecutive sentences is one contiguous token range; the instance builder relies on this.
Sentences with no tokens and documents with no sentences left are dropped while writing.
`token_counts` counts ids over a set of documents in one pass over the map (the word
frequencies that a pre-training run's held-out loss is compared against).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from prefine.errors import PrefineError
from prefine.jsonio import read_json_object
from prefine.tokenizer import PlainTextEncoder

FORMAT_VERSION = 1
UINT16_VOCAB_LIMIT = 1 << 16


def token_dtype(vocab_size: int) -> np.dtype:
    """Half the disk and page cache of uint32 whenever every id fits in 16 bits."""
    return np.dtype(np.uint16) if vocab_size < UINT16_VOCAB_LIMIT else np.dtype(np.uint32)


@dataclass
class TokenShards:
    """A built token cache: memory-mapped tokens plus sentence and document offsets."""

    directory: Path
    tokens: np.ndarray  # memmap [num_tokens]
    sentence_starts: np.ndarray  # memmap int64 [num_sentences + 1]
    document_starts: np.ndarray  # int64 [num_documents + 1], in RAM: one integer per document
    vocab_size: int

    @classmethod
    def open(cls, directory: str | Path) -> TokenShards:
        directory = Path(directory)
        meta = read_json_object(
            directory / "meta.json",
            fix="delete the token cache and rebuild",
            missing=f"{directory} is not a token cache (no meta.json); delete it and rebuild",
        )
        if meta.get("format_version") != FORMAT_VERSION:
            raise PrefineError(f"{directory} was written by another prefine version; delete it and rebuild")
        tokens = np.memmap(directory / "tokens.bin", dtype=np.dtype(meta["dtype"]), mode="r", shape=(meta["num_tokens"],))
        sentence_starts = np.memmap(directory / "sentence_starts.bin", dtype=np.int64, mode="r", shape=(meta["num_sentences"] + 1,))
        document_starts = np.fromfile(directory / "document_starts.bin", dtype=np.int64)
        if len(document_starts) != meta["num_documents"] + 1:
            raise PrefineError(f"{directory} is incomplete (document offsets do not match meta.json); delete it and rebuild")
        return cls(directory, tokens, sentence_starts, document_starts, int(meta["vocab_size"]))

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1

    @property
    def num_sentences(self) -> int:
        return len(self.sentence_starts) - 1

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def document_sentence_counts(self) -> np.ndarray:
        return np.diff(self.document_starts)

    def document_token_starts(self) -> np.ndarray:
        """int64 [num_documents + 1]: document d is tokens[starts[d]:starts[d + 1]]."""
        return np.asarray(self.sentence_starts[self.document_starts])

    def document_tokens(self, document: int) -> np.ndarray:
        first = self.sentence_starts[self.document_starts[document]]
        end = self.sentence_starts[self.document_starts[document + 1]]
        return np.asarray(self.tokens[first:end])

    def sentence_tokens(self, sentence: int) -> np.ndarray:
        return np.asarray(self.tokens[self.sentence_starts[sentence] : self.sentence_starts[sentence + 1]])


def _batches(documents: Iterable[list[str]], batch_size: int) -> Iterable[list[list[str]]]:
    iterator = iter(documents)
    while batch := list(itertools.islice(iterator, batch_size)):
        yield batch


def build_token_shards(
    documents: Iterable[list[str]],
    tokenizer: Tokenizer,
    directory: str | Path,
    batch_size: int = 1000,
    metadata: dict | None = None,
) -> TokenShards:
    """Tokenize `documents` (each a list of sentences) into a token cache at `directory`.

    Everything is written to a sibling temporary folder that is renamed into place only when
    complete, so an interrupted build (error, Ctrl-C, killed job) never leaves a half cache
    that a later run would trust. A complete cache already at `directory` (another process built
    it meanwhile) is kept and ours discarded; an incomplete one is replaced.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.parent / f".{directory.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        meta = _write_shards(documents, tokenizer, temporary, batch_size)
        meta["key"] = metadata or {}
        (temporary / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        # Another process building the same cache at the same time may have finished first: theirs
        # is as good as ours, and deleting it could pull it from under that process's reader.
        if not (directory / "meta.json").is_file():
            if directory.exists():
                # Not a cache prefine finished (no meta.json); moved aside first so the rename is one step.
                stale = directory.parent / f".{directory.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                directory.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            try:
                temporary.rename(directory)
            except OSError:
                if not (directory / "meta.json").is_file():
                    raise
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    return TokenShards.open(directory)


def _write_shards(documents: Iterable[list[str]], tokenizer: Tokenizer, directory: Path, batch_size: int) -> dict:
    encoder = PlainTextEncoder(tokenizer)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    dtype = token_dtype(vocab_size)
    counts = {"num_tokens": 0, "num_sentences": 0, "num_documents": 0}
    progress = tqdm(desc="tokenizing", unit=" docs", unit_scale=True, disable=None, file=sys.stderr)
    with (
        # The Rust tokenizer releases the GIL: while it encodes one batch on its own threads,
        # this thread reads the next batch of documents and writes the previous one.
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefine-tokenize") as tokenize,
        open(directory / "tokens.bin", "wb") as tokens_file,
        open(directory / "sentence_starts.bin", "wb") as sentence_file,
        open(directory / "document_starts.bin", "wb") as document_file,
    ):
        document_file.write(np.zeros(1, np.int64).tobytes())
        files = (tokens_file, sentence_file, document_file)
        pending = None
        for batch in _batches(documents, batch_size):
            encoded = tokenize.submit(encoder.encode_ids, [sentence for document in batch for sentence in document])
            if pending is not None:
                _append_batch(files, counts, pending[0], *pending[1].result(), vocab_size, dtype, progress)
            pending = (batch, encoded)
        if pending is not None:
            _append_batch(files, counts, pending[0], *pending[1].result(), vocab_size, dtype, progress)
        sentence_file.write(np.array([counts["num_tokens"]], np.int64).tobytes())
    progress.close()
    if counts["num_tokens"] == 0:
        raise PrefineError("the corpus has no text after tokenization; check the corpus path and its text column")
    return {"format_version": FORMAT_VERSION, "dtype": dtype.name, **counts, "vocab_size": vocab_size}


def _append_batch(
    files, counts: dict, batch: list[list[str]], batch_tokens: np.ndarray, lengths: np.ndarray, vocab_size: int, dtype: np.dtype, progress
) -> None:
    """Append one tokenized batch of documents to the three cache files and advance `counts`."""
    tokens_file, sentence_file, document_file = files
    if len(batch_tokens) and batch_tokens.max() >= vocab_size:
        raise ValueError(f"tokenizer produced id {batch_tokens.max()} outside its vocabulary of {vocab_size}")
    # Empty sentences would become zero-length segments; drop them, then documents left empty.
    kept = lengths > 0
    document_of_sentence = np.repeat(np.arange(len(batch)), [len(document) for document in batch])
    kept_per_document = np.bincount(document_of_sentence[kept], minlength=len(batch))
    kept_per_document = kept_per_document[kept_per_document > 0]

    sentence_starts = counts["num_tokens"] + np.concatenate([[0], np.cumsum(lengths[kept])[:-1]]).astype(np.int64)
    document_ends = counts["num_sentences"] + np.cumsum(kept_per_document).astype(np.int64)
    tokens_file.write(batch_tokens.astype(dtype).tobytes())
    sentence_file.write(sentence_starts[: int(kept.sum())].tobytes())
    document_file.write(document_ends.tobytes())

    counts["num_tokens"] += len(batch_tokens)
    counts["num_sentences"] += int(kept.sum())
    counts["num_documents"] += len(kept_per_document)
    progress.update(len(batch))
    progress.set_postfix(tokens=counts["num_tokens"], refresh=False)


def cache_key(key_parts: dict) -> str:
    """16 hex digits naming a cache folder; any change in the parts gives a new folder."""
    return hashlib.sha256(json.dumps(key_parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def cached_token_shards(
    documents_factory: Callable[[], Iterable[list[str]]],
    tokenizer: Tokenizer,
    cache_root: str | Path,
    key_parts: dict,
    batch_size: int = 1000,
) -> TokenShards:
    """Open the token cache for `key_parts`, building it (from `documents_factory()`) only if missing.

    `key_parts` must name everything the tokens depend on: the corpus fingerprint, the
    tokenizer fingerprint (its file hash: WordPiece training is not reproducible) and the
    relevant settings. The factory is only called when the cache has to be built.
    """
    directory = Path(cache_root) / cache_key(key_parts)
    if (directory / "meta.json").is_file():
        shards = TokenShards.open(directory)
        print(
            f"Reusing token cache {directory} ({shards.num_documents:,} documents, {shards.num_tokens:,} tokens)",
            file=sys.stderr,
        )
        return shards
    print(f"Building token cache {directory}", file=sys.stderr)
    return build_token_shards(documents_factory(), tokenizer, directory, batch_size=batch_size, metadata=key_parts)


# Tokens counted per pass of `token_counts`: bounds the memory of counting a corpus of any size.
COUNT_CHUNK_TOKENS = 1 << 24


def token_counts(shards: TokenShards, doc_ids: np.ndarray) -> np.ndarray:
    """int64 [vocab_size]: how often each id occurs in the given documents.

    Counts the whole memory map in chunks and subtracts the documents not asked for, so a
    training split (nearly every document) costs one pass and no copy of the corpus.
    """
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    counts = np.zeros(shards.vocab_size, dtype=np.int64)
    starts = shards.document_token_starts()
    others = np.setdiff1d(np.arange(shards.num_documents, dtype=np.int64), doc_ids, assume_unique=True)
    if len(others) > len(doc_ids):
        for document in doc_ids:
            counts += np.bincount(shards.tokens[starts[document] : starts[document + 1]], minlength=shards.vocab_size)
        return counts
    for first in range(0, shards.num_tokens, COUNT_CHUNK_TOKENS):
        counts += np.bincount(shards.tokens[first : first + COUNT_CHUNK_TOKENS], minlength=shards.vocab_size)
    for document in others:
        counts -= np.bincount(shards.tokens[starts[document] : starts[document + 1]], minlength=shards.vocab_size)
    return counts


def split_documents(shards: TokenShards, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train_doc_ids, eval_doc_ids), both sorted int64.

    Whole documents are held out, never sentences, so evaluation text is unseen in training
    (random-next segments are also drawn within each split). Training always keeps at least
    one document; evaluation gets at least one whenever there are two.
    """
    num_documents = shards.num_documents
    num_eval = int(round(num_documents * eval_fraction))
    num_eval = min(max(num_eval, 1 if num_documents > 1 else 0), num_documents - 1)
    permutation = np.random.default_rng([seed, num_documents]).permutation(num_documents)
    return np.sort(permutation[num_eval:]).astype(np.int64), np.sort(permutation[:num_eval]).astype(np.int64)
