"""The BERT architecture config and its named size presets.

Field names are exactly those of Hugging Face's `BertConfig`, so a `config.json` written by
transformers reads into `BertConfig` key for key and ours is readable by transformers.
Presets follow Turc et al. 2019 ("Well-Read Students Learn Better") for the compact sizes and
Devlin et al. 2019 for base and large.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from prefine.config import option
from prefine.errors import PrefineError


@dataclass
class BertConfig:
    vocab_size: int = option(30522, "number of token ids the embedding table holds (set from the tokenizer)")
    hidden_size: int = option(768, "width of every hidden state")
    num_hidden_layers: int = option(12, "number of Transformer blocks")
    num_attention_heads: int = option(12, "attention heads per block; must divide hidden_size")
    intermediate_size: int = option(3072, "width of the feed-forward layer inside each block")
    hidden_act: str = option(
        "gelu", "feed-forward activation: gelu (exact, BERT's), gelu_new / gelu_pytorch_tanh (tanh approximation) or relu"
    )
    hidden_dropout_prob: float = option(0.1, "dropout on embeddings and block outputs")
    attention_probs_dropout_prob: float = option(0.1, "dropout on attention probabilities")
    max_position_embeddings: int = option(512, "longest sequence the position table holds")
    type_vocab_size: int = option(2, "number of segment (token type) ids; 2 for A/B sentence pairs")
    layer_norm_eps: float = option(1e-12, "LayerNorm epsilon")
    initializer_range: float = option(0.02, "standard deviation of the truncated-normal-like weight init")
    pad_token_id: int = option(0, "id of [PAD]; its embedding row starts at zero")
    embedding_size: int = option(
        0,
        "width of the token, position and segment embeddings when narrower than hidden_size (Google's ELECTRA-Small: 128 "
        "for 256), projected up by an `embeddings_project` layer as in transformers' ELECTRA; 0 means hidden_size. "
        "Only models imported with one have it: transformers' BERT classes cannot hold the projection",
    )
    tie_word_embeddings: bool = option(
        True,
        "the masked-LM head scores the vocabulary with the word-embedding table (BERT) instead of a matrix of its own; "
        "pre-training from scratch unties it, because a tied softmax drags every rare word's embedding into one shared "
        "direction early in training (docs/pretraining-defaults.md)",
    )

    def __post_init__(self) -> None:
        for name in _COUNTS:
            if getattr(self, name) < 1:
                raise PrefineError(f"{name} {getattr(self, name)} must be at least 1")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise PrefineError(f"{name} {getattr(self, name)} must be at least 0 and below 1")
        if self.hidden_size % self.num_attention_heads:
            raise PrefineError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}; pick sizes that divide"
            )
        if self.embedding_size < 0:
            raise PrefineError(f"embedding_size {self.embedding_size} must be positive (or 0 for hidden_size)")
        if self.embedding_size == self.hidden_size:
            # One spelling of "no projection", so every `if config.embedding_size` check means one thing.
            self.embedding_size = 0
        if self.hidden_act not in ACTIVATIONS:
            raise PrefineError(f"unsupported hidden_act '{self.hidden_act}'; use one of {', '.join(ACTIVATIONS)}")

    @property
    def embedding_width(self) -> int:
        """The embeddings' width: embedding_size, or hidden_size when that is 0."""
        return self.embedding_size or self.hidden_size

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


# Sizes and counts a network needs at least one of (a model with no blocks or no heads is a typo).
_COUNTS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)

# Activation names as they appear in Hugging Face configs.
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu")

PRESETS: dict[str, dict[str, int]] = {
    # name: layers x hidden (heads = hidden / 64, feed-forward = 4 x hidden), as in Turc et al.
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
    "mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
    "small": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "medium": dict(num_hidden_layers=8, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096),
}


def preset_config(name: str, **overrides) -> BertConfig:
    """The config of a named preset, with fields such as vocab_size overridden."""
    if name not in PRESETS:
        raise PrefineError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}")
    return BertConfig(**{**PRESETS[name], **overrides})


def bert_config_fields(config: BertConfig) -> dict:
    """The fields transformers' BertConfig knows: all of ours but `embedding_size`, which BERT lacks.

    Callers refuse a model with an embedding projection before they write a BERT config.
    """
    values = dataclasses.asdict(config)
    del values["embedding_size"]
    return values


def config_from_dict(values: dict, source: str) -> BertConfig:
    """Read a BERT config.json (ours or Hugging Face's), ignoring keys that do not shape the network."""
    names = {field.name for field in dataclasses.fields(BertConfig)}
    model_type = values.get("model_type", "bert")
    if model_type != "bert":
        raise PrefineError(f"{source}: model_type '{model_type}' is not BERT; prefine reads BERT checkpoints only")
    if values.get("position_embedding_type", "absolute") != "absolute":
        raise PrefineError(
            f"{source}: position_embedding_type '{values['position_embedding_type']}' is unsupported; only absolute positions"
        )
    return BertConfig(**{key: value for key, value in values.items() if key in names})
