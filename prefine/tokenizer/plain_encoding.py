"""Text to flat token-id arrays in bulk, as the token cache needs them: no special tokens, no
padding, no offsets, and no normalizer work where it provably changes nothing.

BERT's normalizer is about a third of the Rust tokenizer's time on English text (cleaning
control characters, CJK spacing, lowercasing, and for prefine's Korean-safe tokenizer an
NFD/strip/NFC round trip). On printable ASCII text, every step but lowercasing is the identity:
there are no control characters, CJK ideographs, accents or decomposable characters in
U+0020..U+007E. So such sentences are lowercased by one `str.lower()` over the whole batch and
encoded by a copy of the tokenizer without a normalizer, which yields the same ids. Everything
else (other scripts, tabs, control characters, text that could contain an added token such as
"[MASK]", which the tokenizer matches before normalizing) goes through the full tokenizer.
The shortcut is only taken for normalizers whose effect on ASCII is known; any other tokenizer
is used as it is. A tokenizer that cuts Korean morphemes keeps its morpheme step on both paths
(ASCII text holds no Hangul, so the step leaves it alone and never calls the analyser).
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers

from prefine.tokenizer.morphemes import copy_tokenizer, tokenizer_json

# Normalizers that leave printable ASCII exactly as it is (lowercasing aside, handled separately).
_ASCII_IDENTITY_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD", "StripAccents"}
PRINTABLE_ASCII = "".join(map(chr, range(0x20, 0x7F)))


def ascii_lowercasing(normalizer: dict | None) -> bool | None:
    """What a normalizer (tokenizer.json's "normalizer" entry) does to printable ASCII text:
    True for lowercasing, False for nothing, None when that cannot be told from its settings."""
    if normalizer is None:
        return False
    kind = normalizer.get("type")
    if kind == "BertNormalizer":
        return bool(normalizer.get("lowercase"))
    if kind == "Lowercase":
        return True
    if kind in _ASCII_IDENTITY_NORMALIZERS:
        return False
    if kind == "Replace" and _replaces_only_non_ascii(normalizer):
        return False
    if kind == "Sequence":
        effects = [ascii_lowercasing(part) for part in normalizer.get("normalizers", [])]
        return None if None in effects else any(effects)
    return None


def _replaces_only_non_ascii(normalizer: dict) -> bool:
    """Whether a Replace normalizer can never match printable ASCII (prefine's accent stripping).

    A pattern that is one bracketed character class matches one character at a time, so trying
    it on each of the 95 printable ASCII characters is a proof, not a sample.
    """
    pattern = normalizer.get("pattern", {})
    if "String" in pattern:
        return not pattern["String"].isascii()
    regex = pattern.get("Regex", "")
    if not (regex.startswith("[") and regex.endswith("]") and regex.count("]") == 1):
        return False
    replace = normalizers.Replace(Regex(regex), normalizer.get("content", ""))
    return replace.normalize_str(PRINTABLE_ASCII) == PRINTABLE_ASCII


def _plain_copy(tokenizer: Tokenizer, without_normalizer: bool = False) -> Tokenizer:
    """The tokenizer without padding or truncation (a saved tokenizer may carry either, and both
    would corrupt flat ids), optionally without its normalizer."""
    if tokenizer.padding is None and tokenizer.truncation is None and not without_normalizer:
        return tokenizer
    copy = copy_tokenizer(tokenizer)
    copy.no_padding()
    copy.no_truncation()
    if without_normalizer:
        copy.normalizer = None
    return copy


class PlainTextEncoder:
    """Encodes batches of texts to (token ids, lengths) with `tokenizer`, ids identical to
    `tokenizer.encode(text, add_special_tokens=False).ids` for every text."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = _plain_copy(tokenizer)
        description = json.loads(tokenizer_json(tokenizer))
        self.ascii_lowercase = ascii_lowercasing(description.get("normalizer"))
        self.unnormalized = _plain_copy(tokenizer, without_normalizer=True) if self.ascii_lowercase is not None else None
        added = [token["content"] for token in description.get("added_tokens", []) if token.get("content")]
        # Case-insensitive on purpose: erring towards the full tokenizer is always correct.
        self.added_token_pattern = re.compile("|".join(map(re.escape, added)), re.IGNORECASE) if added else None

    def encode_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """int64 token ids of all `texts` back to back, and int64 [len(texts)] lengths."""
        ids = self._ids_per_text(texts)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        tokens = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
        return tokens, lengths

    def _ids_per_text(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        shortcut = self._shortcut_rows(texts)
        if self.unnormalized is None or not shortcut:
            return [encoding.ids for encoding in self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)]
        # One lower() over the batch instead of one per text; printable texts hold no "\n".
        joined = "\n".join(texts[row] for row in shortcut)
        plain = (joined.lower() if self.ascii_lowercase else joined).split("\n")
        fast = [encoding.ids for encoding in self.unnormalized.encode_batch_fast(plain, add_special_tokens=False)]
        if len(shortcut) == len(texts):
            return fast
        ids: list[list[int]] = [[] for _ in texts]
        for row, row_ids in zip(shortcut, fast):
            ids[row] = row_ids
        rest = sorted(set(range(len(texts))).difference(shortcut))
        for row, encoding in zip(rest, self.tokenizer.encode_batch_fast([texts[row] for row in rest], add_special_tokens=False)):
            ids[row] = encoding.ids
        return ids

    def _shortcut_rows(self, texts: list[str]) -> list[int]:
        """Rows that are printable ASCII and cannot contain an added token."""
        if self.unnormalized is None:
            return []
        rows = [row for row, text in enumerate(texts) if text.isascii() and text.isprintable()]
        if self.added_token_pattern is not None and self.added_token_pattern.search("\n".join(texts[row] for row in rows)):
            rows = [row for row in rows if not self.added_token_pattern.search(texts[row])]
        return rows
