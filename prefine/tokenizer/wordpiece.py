"""WordPiece tokenizers: train on a corpus, save in the format transformers reads, load back.

All the tokenization work is done by Hugging Face's Rust `tokenizers`; this module only wires
up a BERT-style pipeline (normalizer, BertPreTokenizer, WordPiece with "##" continuations,
[CLS] A [SEP] B [SEP] template) and fixes one flaw of the BERT original: its accent stripping
decomposes text to NFD and drops every combining mark, which turns Korean syllables into
conjoining jamo ("한국어" -> "ᄒ ᅡ ᆫ ..."), so a Korean vocabulary never matches anything.
It also makes training reproducible, which the trainer alone is not (`train_tokenizer`).
With `--morphemes kiwi` a Python step after the pre-tokenizer also cuts Korean words into
morphemes (`prefine.tokenizer.morphemes`); it is recorded in tokenizer_config.json, since
tokenizer.json cannot hold it, and `load_tokenizer` puts it back.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from prefine.config import option
from prefine.errors import PrefineError
from prefine.jsonio import read_json_object
from prefine.tokenizer.morphemes import (
    ANALYSERS,
    NO_MORPHEMES,
    analyser_version,
    attach_morphemes,
    morpheme_analyser,
    require_analyser,
    tokenizer_json,
    without_morphemes,
)

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK]  # ids 0..4 in every vocabulary prefine trains
CONTINUATION_PREFIX = "##"
MAX_CHARACTERS_PER_WORD = 100  # longer "words" (URLs, base64) become [UNK], as in BERT
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")

# The combining-mark blocks that carry accents on Latin, Greek and Cyrillic letters. Removing
# only these (instead of every Unicode "Mn" mark, as BERT does) leaves the marks that are part
# of a script's spelling alone: Japanese dakuten (ガ), Devanagari and Thai vowel signs.
_LATIN_LIKE_ACCENTS = Regex("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


@dataclass
class TokenizerConfig:
    vocab_size: int = option(30522, "WordPiece vocabulary size, special tokens included")
    lowercase: bool = option(True, "lowercase the text before tokenizing (an uncased model)")
    strip_accents: bool = option(
        True, "strip accents from Latin, Greek and Cyrillic letters (café -> cafe); Hangul, kana and other scripts are never decomposed"
    )
    min_frequency: int = option(2, "a merged word piece must occur at least this often in the corpus")
    # Korean alone uses ~2,400 common syllables (11,172 possible) and mixed text adds Hanja, Latin
    # and symbols; characters beyond the limit make whole words [UNK], so the limit is generous.
    limit_alphabet: int = option(10_000, "keep at most this many distinct characters (the most frequent); rarer characters become [UNK]")
    morphemes: Literal["none", "kiwi"] = option(
        NO_MORPHEMES,
        "cut Korean words into morphemes with kiwipiepy's Kiwi before WordPiece, in training and every encode "
        "(분석기를 -> 분석기 ##를, as KLUE's tokenizers do); kiwi needs pip install 'prefine[korean]'",
    )

    def __post_init__(self) -> None:
        if self.morphemes != NO_MORPHEMES:
            require_analyser(self.morphemes)  # a missing kiwipiepy stops the run before the corpus is read


def build_normalizer(lowercase: bool, strip_accents: bool) -> normalizers.Normalizer:
    """BERT's normalizer (control characters, CJK spacing, lowercasing) with Korean-safe accent stripping.

    The accents are stripped by NFD, removing the Latin-like combining marks, then NFC. NFC
    recomposes the Hangul syllables that NFD split (conjoining jamo are letters, not marks, so
    nothing removes them) while "Café" comes back as "Cafe".
    """
    bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=lowercase)
    if not strip_accents:
        return bert
    return normalizers.Sequence([bert, normalizers.NFD(), normalizers.Replace(_LATIN_LIKE_ACCENTS, ""), normalizers.NFC()])


def _attach_bert_pipeline(tokenizer: Tokenizer, lowercase: bool, strip_accents: bool) -> None:
    tokenizer.normalizer = build_normalizer(lowercase, strip_accents)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix=CONTINUATION_PREFIX)


def _attach_post_processor(tokenizer: Tokenizer) -> None:
    """[CLS] A [SEP] for one text; [CLS] A [SEP] B [SEP] with token type 1 on B for a pair, as in BERT."""
    ids = special_token_ids(tokenizer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, ids.cls), (SEP, ids.sep)],
    )


def _batches(sentences: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    # Lists cross from Python into Rust far faster than one string at a time.
    iterator = iter(sentences)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def train_tokenizer(sentences: Iterable[str], config: TokenizerConfig, show_progress: bool = True) -> Tokenizer:
    """Train a WordPiece vocabulary on `sentences`: the same vocabulary, in the same id order, every time.

    `sentences` is read twice (see `_continuation_characters`): pass a list or a re-iterable
    whose `__iter__` re-reads the files, which streams; a one-shot iterator is held in memory.
    """
    if config.vocab_size <= len(SPECIAL_TOKENS):
        raise PrefineError(
            f"vocab_size {config.vocab_size} leaves no room beside the {len(SPECIAL_TOKENS)} special tokens; use a few thousand or more"
        )
    if iter(sentences) is sentences:
        sentences = list(sentences)
    continuations = _continuation_characters(sentences, config, show_progress)
    trained = _trained(sentences, config, config.vocab_size, SPECIAL_TOKENS + continuations, show_progress)
    if trained.get_vocab_size() <= len(SPECIAL_TOKENS):
        raise PrefineError("the tokenizer corpus holds no text to learn a vocabulary from; point at files with content")
    # The continuations were seeded as the trainer's special tokens only to fix their ids; the
    # tokenizer built from the trained vocabulary treats them as the ordinary pieces they are.
    tokenizer = _new_tokenizer(config, trained.get_vocab(with_added_tokens=False))
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    _attach_post_processor(tokenizer)
    return tokenizer


def _new_tokenizer(config: TokenizerConfig, vocab: dict[str, int] | None = None) -> Tokenizer:
    model = models.WordPiece(
        vocab, unk_token=UNK, continuing_subword_prefix=CONTINUATION_PREFIX, max_input_chars_per_word=MAX_CHARACTERS_PER_WORD
    )
    tokenizer = Tokenizer(model)
    _attach_bert_pipeline(tokenizer, config.lowercase, config.strip_accents)
    if config.morphemes != NO_MORPHEMES:
        attach_morphemes(tokenizer, config.morphemes, CONTINUATION_PREFIX)
    return tokenizer


def _trained(
    sentences: Iterable[str], config: TokenizerConfig, vocab_size: int, special_tokens: list[str], show_progress: bool
) -> Tokenizer:
    tokenizer = _new_tokenizer(config)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=special_tokens,
        limit_alphabet=config.limit_alphabet,
        continuing_subword_prefix=CONTINUATION_PREFIX,
        show_progress=show_progress,
    )
    tokenizer.train_from_iterator(_batches(sentences), trainer=trainer)
    return tokenizer


def _continuation_characters(sentences: Iterable[str], config: TokenizerConfig, show_progress: bool) -> list[str]:
    """The "##" + character pieces the trainer creates for this corpus, sorted.

    The trainer (tokenizers 0.23) sorts the alphabet but numbers these pieces in the iteration
    order of a hash map of words, which changes from process to process; the ids then break ties
    between equally frequent merges, so the same corpus gave a different vocabulary, not only a
    different order, from run to run (huggingface/tokenizers#1794). A first pass that stops before
    any merge finds the set, which does not depend on that order; seeded in sorted order as
    special tokens, the second pass's ids and merges are the same every run.
    """
    alphabet_only = _trained(sentences, config, 0, SPECIAL_TOKENS, show_progress)
    prefix_length = len(CONTINUATION_PREFIX)
    return sorted(
        token
        for token in alphabet_only.get_vocab(with_added_tokens=False)
        if token.startswith(CONTINUATION_PREFIX) and len(token) == prefix_length + 1
    )


def vocabulary_in_id_order(tokenizer: Tokenizer) -> list[str]:
    """Tokens indexed by id (vocab.txt's line order); the ids must be 0..n-1 without gaps."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    tokens = [""] * len(vocab)
    for token, token_id in vocab.items():
        if token_id >= len(tokens) or tokens[token_id]:
            raise PrefineError(
                f"tokenizer ids are not 0..{len(vocab) - 1} without gaps (token {token!r} has id {token_id}); retrain the tokenizer"
            )
        tokens[token_id] = token
    return tokens


def normalizer_settings(tokenizer: Tokenizer) -> tuple[bool, bool]:
    """(lowercase, strip_accents) as configured in the tokenizer's normalizer."""
    normalizer = json.loads(tokenizer_json(tokenizer)).get("normalizer") or {}
    parts = normalizer.get("normalizers", [normalizer]) if normalizer.get("type") == "Sequence" else [normalizer]
    lowercase = any(part.get("lowercase") or part.get("type") == "Lowercase" for part in parts)
    # A BertNormalizer with strip_accents unset strips whenever it lowercases (BERT's rule).
    strip_accents = any(
        part.get("type") in ("StripAccents", "Replace")
        or (
            part.get("type") == "BertNormalizer"
            and (part.get("lowercase") if part.get("strip_accents") is None else part.get("strip_accents"))
        )
        for part in parts
    )
    return lowercase, strip_accents


def save_tokenizer(
    tokenizer: Tokenizer,
    directory: Path,
    lowercase: bool | None = None,
    strip_accents: bool | None = None,
    model_max_length: int | None = None,
) -> None:
    """Write tokenizer.json, vocab.txt, tokenizer_config.json and special_tokens_map.json.

    `lowercase` and `strip_accents` default to what the tokenizer's normalizer does. The folder
    loads with transformers' AutoTokenizer.from_pretrained as well as with `load_tokenizer`, except
    that transformers does not cut morphemes: a morpheme tokenizer is marked by "prefine_morphemes"
    in tokenizer_config.json, which only `load_tokenizer` reads (and `prefine export` refuses it).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    detected_lowercase, detected_strip_accents = normalizer_settings(tokenizer)
    lowercase = detected_lowercase if lowercase is None else lowercase
    strip_accents = detected_strip_accents if strip_accents is None else strip_accents
    special_token_ids(tokenizer)  # fail before writing anything if a special token is missing
    tokens = vocabulary_in_id_order(tokenizer)
    with without_morphemes(tokenizer):
        tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "vocab.txt").write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
    special_tokens_map = {"unk_token": UNK, "sep_token": SEP, "pad_token": PAD, "cls_token": CLS, "mask_token": MASK}
    tokenizer_config = {
        # transformers >= 5 rebuilds a BertTokenizerFast's normalizer from do_lower_case and
        # strip_accents, i.e. BERT's NFD accent stripping that destroys Hangul. The generic fast
        # tokenizer class runs tokenizer.json exactly as saved, in transformers 4 and 5 alike.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "do_lower_case": lowercase,
        "strip_accents": strip_accents,
        "tokenize_chinese_chars": True,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        **special_tokens_map,
    }
    if model_max_length is not None:
        tokenizer_config["model_max_length"] = model_max_length
    analyser = morpheme_analyser(tokenizer)
    if analyser is not None:
        tokenizer_config["prefine_morphemes"] = analyser
        tokenizer_config["prefine_morphemes_version"] = analyser_version(analyser)
    for name, content in (("tokenizer_config.json", tokenizer_config), ("special_tokens_map.json", special_tokens_map)):
        (directory / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _read_vocabulary(path: Path) -> dict[str, int]:
    # Only "\n" ends a line, as in google-research/bert and transformers: "\r" or spaces can be
    # part of a token.
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8", newline="\n") as handle:
        for token_id, line in enumerate(handle):
            token = line.removesuffix("\n")
            if token in vocab:
                raise PrefineError(
                    f"{path} line {token_id + 1} repeats the token {token!r} (first on line {vocab[token] + 1}); remove the duplicate"
                )
            vocab[token] = token_id
    if not vocab:
        raise PrefineError(f"{path} is empty; it must list one token per line")
    return vocab


def _built_with_script_safe_normalizer(vocab: dict[str, int], lowercase: bool) -> bool:
    """Whether the vocabulary holds pieces that only our normalizer leaves intact (Hangul syllables, ガ).

    BERT's accent stripping turns "한" into jamo, so a vocabulary it produced never contains "한";
    one that does was made with the script-safe normalizer and must be read with it.
    """
    bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=lowercase)
    ours = build_normalizer(lowercase, strip_accents=True)
    return any(bert.normalize_str(token) != ours.normalize_str(token) for token in vocab)


def _tokenizer_from_vocabulary(directory: Path) -> Tokenizer:
    """A BERT WordPiece tokenizer from vocab.txt plus tokenizer_config.json's casing settings.

    The ids match transformers' BertTokenizerFast for vocabularies made by BERT's own tooling.
    """
    settings = read_json_object(directory / "tokenizer_config.json", fix="fix or delete it", missing_ok=True)
    lowercase = bool(settings.get("do_lower_case", True))
    strip_accents = settings.get("strip_accents")
    strip_accents = lowercase if strip_accents is None else bool(strip_accents)  # BERT's rule: uncased implies accent stripping
    vocab = _read_vocabulary(directory / "vocab.txt")
    if UNK not in vocab:
        raise PrefineError(f"{directory / 'vocab.txt'} has no {UNK} token; add it as a line of its own")
    tokenizer = Tokenizer(
        models.WordPiece(
            vocab, unk_token=UNK, continuing_subword_prefix=CONTINUATION_PREFIX, max_input_chars_per_word=MAX_CHARACTERS_PER_WORD
        )
    )
    _attach_bert_pipeline(tokenizer, lowercase, strip_accents)
    if strip_accents and not _built_with_script_safe_normalizer(vocab, lowercase):
        # A vocabulary made by google-research/bert or transformers: reproduce their normalizer
        # exactly, so the ids match the ones the model was trained with.
        tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=lowercase
        )
    tokenizer.add_special_tokens([token for token in SPECIAL_TOKENS if token in vocab])
    _attach_post_processor(tokenizer)
    return tokenizer


def load_tokenizer(directory: Path) -> Tokenizer:
    """Load tokenizer.json from `directory`, or else rebuild the tokenizer from vocab.txt; either way
    with the morpheme step when tokenizer_config.json records one."""
    directory = Path(directory)
    if (directory / "tokenizer.json").is_file():
        try:
            tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as error:  # the Rust side raises a bare Exception for malformed files
            raise PrefineError(
                f"{directory / 'tokenizer.json'} cannot be read ({error}); delete it to fall back to vocab.txt, or retrain"
            ) from None
        return _with_recorded_morphemes(tokenizer, directory)
    if (directory / "vocab.txt").is_file():
        return _with_recorded_morphemes(_tokenizer_from_vocabulary(directory), directory)
    if not directory.exists():
        raise PrefineError(f"tokenizer folder not found: {directory}; check the path")
    raise PrefineError(f"{directory} holds neither tokenizer.json nor vocab.txt; train a tokenizer or point at a BERT model folder")


def recorded_morphemes(directory: Path) -> str | None:
    """The morpheme analyser a saved tokenizer folder records ("kiwi"), read without loading it or the analyser."""
    analyser = read_json_object(Path(directory) / "tokenizer_config.json", fix="fix or delete it", missing_ok=True).get("prefine_morphemes")
    return None if analyser in (None, NO_MORPHEMES) else str(analyser)


def _with_recorded_morphemes(tokenizer: Tokenizer, directory: Path) -> Tokenizer:
    """Re-attach the morpheme step that tokenizer_config.json records (tokenizer.json cannot hold it)."""
    path = directory / "tokenizer_config.json"
    settings = read_json_object(path, fix="fix or delete it", missing_ok=True)
    analyser = recorded_morphemes(directory)
    if analyser is None:
        return tokenizer
    if analyser not in ANALYSERS:
        raise PrefineError(
            f"{path} records prefine_morphemes {analyser!r}, which this prefine does not know ({', '.join(ANALYSERS)}); upgrade prefine"
        )
    attach_morphemes(tokenizer, analyser, CONTINUATION_PREFIX)
    recorded, installed = settings.get("prefine_morphemes_version"), analyser_version(analyser)
    if recorded and recorded != installed:
        warnings.warn(
            f"{directory} was trained with {recorded} and {installed} is installed; morphemes may be cut differently "
            f"from training (pip install 'prefine[korean]' installs the tested version)",
            stacklevel=2,
        )
    return tokenizer


def tokenizer_fingerprint(directory_or_tokenizer: Path | str | Tokenizer) -> str:
    """sha256 of the tokenizer's canonical JSON, a cache key for anything tokenized with it.

    WordPiece training is not deterministic run to run (ties between equally frequent merges), so
    caches must key on the tokenizer actually saved, never on the settings that trained it.
    """
    tokenizer = directory_or_tokenizer if isinstance(directory_or_tokenizer, Tokenizer) else load_tokenizer(Path(directory_or_tokenizer))
    description = json.loads(tokenizer_json(tokenizer))
    analyser = morpheme_analyser(tokenizer)
    if analyser is not None:
        # The same vocabulary with and without morphemes encodes differently, so caches must not
        # be shared. The analyser's version stays out: a checkpoint records this fingerprint, and
        # an upgraded kiwipiepy must not make its run unloadable (load_tokenizer warns instead).
        description["prefine_morphemes"] = analyser
    canonical = json.dumps(description, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SpecialTokenIds:
    pad: int
    unk: int
    cls: int
    sep: int
    mask: int


def special_token_ids(tokenizer: Tokenizer) -> SpecialTokenIds:
    """The ids of [PAD] [UNK] [CLS] [SEP] [MASK]; PrefineError naming any that is missing."""
    found = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    missing = [token for token, token_id in found.items() if token_id is None]
    if missing:
        raise PrefineError(f"the tokenizer has no {' '.join(missing)} token; add it to vocab.txt or train a new tokenizer with prefine")
    ids = {token: token_id for token, token_id in found.items() if token_id is not None}
    return SpecialTokenIds(pad=ids[PAD], unk=ids[UNK], cls=ids[CLS], sep=ids[SEP], mask=ids[MASK])


def special_token_id(tokenizer: Tokenizer, token: str) -> int:
    """The id of one special token; PrefineError when the tokenizer lacks it."""
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise PrefineError(f"the tokenizer has no {token} token; add it to vocab.txt or train a new tokenizer with prefine")
    return token_id


def continuation_mask(tokenizer: Tokenizer) -> np.ndarray:
    """Boolean [vocab_size] array, True for "##" pieces that continue a word (for whole-word masking)."""
    mask = np.zeros(tokenizer.get_vocab_size(with_added_tokens=True), dtype=bool)
    for token, token_id in tokenizer.get_vocab(with_added_tokens=True).items():
        if token.startswith(CONTINUATION_PREFIX) and len(token) > len(CONTINUATION_PREFIX):
            mask[token_id] = True
    return mask
