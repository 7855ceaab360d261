"""WordPiece tokenizer: train on a corpus, save for transformers, load back, and expose the ids
the pre-training data builder needs (special tokens, "##" continuation pieces), and encode
plain text to flat id arrays in bulk; optionally with Korean words cut into morphemes first
(`--morphemes kiwi`), which is why tokenizers are copied and serialised with `copy_tokenizer`
and `tokenizer_json`."""

from prefine.tokenizer.morphemes import copy_tokenizer, morpheme_analyser, tokenizer_json
from prefine.tokenizer.plain_encoding import PlainTextEncoder
from prefine.tokenizer.wordpiece import (
    CONTINUATION_PREFIX,
    SPECIAL_TOKENS,
    TOKENIZER_FILES,
    SpecialTokenIds,
    TokenizerConfig,
    build_normalizer,
    continuation_mask,
    load_tokenizer,
    normalizer_settings,
    recorded_morphemes,
    save_tokenizer,
    special_token_id,
    special_token_ids,
    tokenizer_fingerprint,
    train_tokenizer,
    vocabulary_in_id_order,
)

__all__ = [
    "CONTINUATION_PREFIX",
    "PlainTextEncoder",
    "PlainTextEncoder",
    "PlainTextEncoder",
    "SPECIAL_TOKENS",
    "TOKENIZER_FILES",
    "SpecialTokenIds",
    "TokenizerConfig",
    "build_normalizer",
    "continuation_mask",
    "copy_tokenizer",
    "load_tokenizer",
    "morpheme_analyser",
    "normalizer_settings",
    "recorded_morphemes",
    "save_tokenizer",
    "special_token_id",
    "special_token_ids",
    "tokenizer_fingerprint",
    "tokenizer_json",
    "train_tokenizer",
    "vocabulary_in_id_order",
]
