"""Corpus reading: files, folders, globs or Hugging Face datasets streamed as documents (lists of
sentences), a rule-based sentence splitter, and the built-in offline quickstart corpus and task."""

from prefine.corpus.readers import (
    CorpusConfig,
    CorpusSentences,
    check_corpus,
    corpus_fingerprint,
    detect_text_format,
    iter_documents,
    iter_sentences,
    resolve_paths,
)
from prefine.corpus.sentences import split_sentences

__all__ = [
    "CorpusConfig",
    "CorpusSentences",
    "check_corpus",
    "corpus_fingerprint",
    "detect_text_format",
    "iter_documents",
    "iter_sentences",
    "resolve_paths",
    "split_sentences",
]
