"""WordPiece tokenizer: train on a corpus, save for transformers, load back, and expose the ids
the pre-training data builder needs (special tokens, "##" continuation pieces), and encode
plain text to flat id arrays in bulk."""

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
    "load_tokenizer",
    "normalizer_settings",
    "save_tokenizer",
    "special_token_id",
    "special_token_ids",
    "tokenizer_fingerprint",
    "train_tokenizer",
    "vocabulary_in_id_order",
]
