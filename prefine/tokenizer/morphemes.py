"""Korean morpheme boundaries inside WordPiece words (`--morphemes kiwi`), and the helpers that
serialise and copy a tokenizer carrying them.

With the option on, the tokenizer splits text into words as BERT does (whitespace and
punctuation), then cuts every word that holds Hangul at the morpheme boundaries kiwipiepy's
`Kiwi` finds in the whole text: "분석기를" -> "분석기" "##를". WordPiece learns and applies its
pieces inside each morpheme, at tokenizer training and at every encode alike, so pre-training,
fine-tuning, prediction, serving and evaluation all see the same pieces.

Offsets survive: the cuts are made in the text itself, at the start/len positions Kiwi reports
for each morpheme, never by replacing the text with Kiwi's normalised forms (Kiwi reads "써" as
쓰 + 어), so every piece still maps back to the characters it came from (QA answers, NER spans).
Where morphemes share characters (contractions: "했" is 하 + 었, "돼서" is 되 + 어서), no cut
falls inside them and the surface span stays whole.

A morpheme after the first of a word is a "##" continuation of that word, as in KLUE's
morpheme-based vocabularies (klue/bert-base reads "이순신은" as 이순신 ##은): decoding joins it
back to its word (이순신은, not 이순신 은) and whole-word masking masks the whole word. The
WordPiece model never sees the cut, so the pre-tokenizer writes the "##" in front of the
morpheme itself (aligned to its first character, so offsets are unchanged) and WordPiece
matches "##를" as one vocabulary entry; training sees the same prefixed words and so learns
those entries (plus two it never uses, "##" and "###", from merging the prefix).

A Python pre-tokenizer cannot be written into tokenizer.json (nor pickled). A saved tokenizer
therefore has BERT's pre-tokenizer in tokenizer.json and `"prefine_morphemes": "kiwi"` with the
kiwipiepy version in tokenizer_config.json; `load_tokenizer` puts the morpheme step back.
`tokenizer_json` and `copy_tokenizer` are how prefine serialises and copies any tokenizer, with
or without the step. The analyser is only imported when the option is used; without kiwipiepy
the error names the extra to install.

Cost: Kiwi's analysis, not WordPiece, is most of the time (on one core, bulk encoding of short
Korean comments is about 25 times slower than without the option). There is no batching step of
our own: tokenizers' batch encoding calls the pre-tokenizer from its worker threads and kiwipiepy
releases the GIL while it analyses, so more cores can analyse at once (one Kiwi serves all
threads; its results do not depend on which thread asks).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import re
import threading
import warnings
from collections.abc import Iterator
from importlib import metadata
from typing import Any

from tokenizers import NormalizedString, PreTokenizedString, Tokenizer, pre_tokenizers

from prefine.errors import PrefineError

ANALYSERS = ("kiwi",)
NO_MORPHEMES = "none"
INSTALL_HINT = "pip install 'prefine[korean]'"

# Hangul syllables, conjoining jamo and compatibility jamo ("ㅋㅋ"): words without any are never cut.
_HANGUL = re.compile("[\uac00-\ud7a3\u1100-\u11ff\u3131-\u318e]")
_ATTRIBUTE = "_prefine_morpheme_splitter"  # where a tokenizer carries its splitter (a Tokenizer takes attributes)

_kiwi_lock = threading.Lock()
_kiwi_instance: Any = None


def require_analyser(analyser: str) -> None:
    """Fail in one line, before any work, when `analyser` is unknown or its package is missing."""
    if analyser not in ANALYSERS:
        raise PrefineError(f"unknown morpheme analyser {analyser!r}; use one of {', '.join(ANALYSERS)} (or {NO_MORPHEMES})")
    try:
        import kiwipiepy  # noqa: F401
    except ImportError:
        raise PrefineError(f"--morphemes {analyser} splits Korean words with kiwipiepy, which is not installed: {INSTALL_HINT}") from None


def analyser_version(analyser: str) -> str:
    """The analyser's package and model versions, recorded beside a saved tokenizer (their splits can change between versions)."""
    require_analyser(analyser)
    versions = []
    for package in ("kiwipiepy", "kiwipiepy_model"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} unknown")
    return ", ".join(versions)


def _kiwi() -> Any:
    """One Kiwi per process, made on first use: loading its model takes seconds, analysing is thread-safe."""
    global _kiwi_instance
    with _kiwi_lock:
        if _kiwi_instance is None:
            require_analyser("kiwi")
            from kiwipiepy import Kiwi

            with warnings.catch_warnings():
                # kiwipiepy warns that num_workers=0 changed meaning in 0.21; 0 (no thread pool) is
                # what is wanted: tokenizers already calls the pre-tokenizer from its own threads.
                warnings.simplefilter("ignore", DeprecationWarning)
                _kiwi_instance = Kiwi(num_workers=0)
        return _kiwi_instance


# Kiwi's analysis is most of the cost of a morpheme tokenizer (about 3/4 of encoding time on short
# comments), and pre-training analyses each sentence twice: once to train the vocabulary, once to
# encode the corpus. Remembering the last 2^18 texts (about 60 MB for sentence-long texts)
# makes the second pass over a corpus of up to that many sentences, and repeated texts, nearly free.
@functools.lru_cache(maxsize=1 << 18)
def morpheme_boundaries(text: str) -> tuple[int, ...]:
    """Sorted character positions in `text` where one morpheme ends and the next begins, with no
    morpheme spanning them (a contraction's shared characters hold no boundary)."""
    edges: set[int] = set()
    inside: set[int] = set()
    for token in _kiwi().tokenize(text):
        start, end = token.start, token.start + token.len
        edges.update((start, end))
        inside.update(range(start + 1, end))
    return tuple(sorted(edges - inside))


class MorphemeSplitter:
    """The custom pre-tokenizer that runs after BertPreTokenizer and cuts its words at morpheme boundaries."""

    def __init__(self, analyser: str, continuation_prefix: str, words: pre_tokenizers.PreTokenizer | None):
        require_analyser(analyser)
        self.analyser = analyser
        self.continuation_prefix = continuation_prefix
        self.words = words  # the pre-tokenizer that splits words first (BERT's), and what tokenizer.json holds

    def pre_tokenize(self, pretok: PreTokenizedString) -> None:
        splits = pretok.get_splits()
        if not any(tokens is None and _HANGUL.search(word) for word, _, tokens in splits):
            return
        # Kiwi reads the whole text for context ("나는" is 나 + 는 or 날 + 는 by its neighbours),
        # rebuilt from the words with one space wherever BERT removed whitespace; added tokens
        # such as [MASK] become a space rather than text to analyse.
        parts: list[str] = []
        starts: list[int] = []
        length, previous_end = 0, None
        for word, (start, end), tokens in splits:
            if tokens is not None:
                word = " "
            elif previous_end is not None and start > previous_end:
                parts.append(" ")
                length += 1
            starts.append(length)
            parts.append(word)
            length += len(word)
            previous_end = end
        boundaries = morpheme_boundaries("".join(parts))

        def cut(index: int, word: NormalizedString) -> list[NormalizedString]:
            surface = str(word)
            if not _HANGUL.search(surface):
                return [word]
            start = starts[index]
            first, last = bisect.bisect_right(boundaries, start), bisect.bisect_left(boundaries, start + len(surface))
            if first >= last:
                return [word]
            edges = [0, *(position - start for position in boundaries[first:last]), len(surface)]
            pieces = []
            for number, (begin, stop) in enumerate(zip(edges, edges[1:])):
                piece = word[begin:stop]
                if piece is None:  # a range outside the word (cannot happen): leave the word whole
                    return [word]
                if number:
                    piece.prepend(self.continuation_prefix)
                pieces.append(piece)
            return pieces

        pretok.split(cut)


def attach_morphemes(tokenizer: Tokenizer, analyser: str, continuation_prefix: str) -> Tokenizer:
    """Add the morpheme step after the tokenizer's own pre-tokenizer (BERT's, in prefine's tokenizers); in place, returns `tokenizer`."""
    if getattr(tokenizer, _ATTRIBUTE, None) is not None:
        return tokenizer
    words = tokenizer.pre_tokenizer
    splitter = MorphemeSplitter(analyser, continuation_prefix, words)
    step = pre_tokenizers.PreTokenizer.custom(splitter)
    tokenizer.pre_tokenizer = step if words is None else pre_tokenizers.Sequence([words, step])
    setattr(tokenizer, _ATTRIBUTE, splitter)
    return tokenizer


def morpheme_analyser(tokenizer: Tokenizer) -> str | None:
    """The analyser ("kiwi") when the tokenizer cuts words into morphemes, else None."""
    splitter = getattr(tokenizer, _ATTRIBUTE, None)
    return splitter.analyser if splitter is not None else None


@contextlib.contextmanager
def without_morphemes(tokenizer: Tokenizer) -> Iterator[Tokenizer]:
    """The tokenizer with only its word pre-tokenizer (BERT's) for the duration (to serialise it), the morpheme step restored after.

    The tokenizer must not be encoding in another thread meanwhile; prefine serialises a
    tokenizer while setting a run up, before anything encodes with it.
    """
    splitter: MorphemeSplitter | None = getattr(tokenizer, _ATTRIBUTE, None)
    if splitter is None:
        yield tokenizer
        return
    tokenizer.pre_tokenizer = splitter.words
    delattr(tokenizer, _ATTRIBUTE)
    try:
        yield tokenizer
    finally:
        attach_morphemes(tokenizer, splitter.analyser, splitter.continuation_prefix)


def tokenizer_json(tokenizer: Tokenizer) -> str:
    """tokenizer.json's text; for a morpheme tokenizer, everything but the morpheme step."""
    with without_morphemes(tokenizer):
        return tokenizer.to_str()


def copy_tokenizer(tokenizer: Tokenizer) -> Tokenizer:
    """An independent copy (its padding or truncation can change without touching the original), morpheme step included."""
    copy = Tokenizer.from_str(tokenizer_json(tokenizer))
    splitter: MorphemeSplitter | None = getattr(tokenizer, _ATTRIBUTE, None)
    if splitter is not None:
        attach_morphemes(copy, splitter.analyser, splitter.continuation_prefix)
    return copy
