"""Helpers for the interop tests: sample texts, tiny transformers configs, a padded batch, comparisons."""

from __future__ import annotations

import pytest
import torch

ENGLISH_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A café in Zürich serves naïve tourists strong coffee.",
    "Tokenizers split rare words into smaller pieces.",
]
KOREAN_TEXTS = ["이 영화 정말 재미있어요.", "한국어 감정 분석은 어렵지 않아요."]
CORPUS = (
    ENGLISH_TEXTS
    + KOREAN_TEXTS
    + [
        "The tokenizer learns the most frequent pieces of the corpus.",
        "정말 재미있는 영화였다.",
        "감정 분석 모델을 만들어 봅시다.",
        "The dog and the fox are friends now.",
    ]
    * 3
)

TINY_SIZES = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, max_position_embeddings=64)


def hf_tiny_config(vocab_size: int, **overrides):
    transformers = pytest.importorskip("transformers")
    return transformers.BertConfig(vocab_size=vocab_size, **{**TINY_SIZES, **overrides})


def padded_batch(vocab_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Three sequences of lengths 12, 7 and 4 padded to 12, with segment B on the second half."""
    generator = torch.Generator().manual_seed(seed)
    lengths = [12, 7, 4]
    input_ids = torch.randint(5, vocab_size, (len(lengths), max(lengths)), generator=generator)
    attention_mask = torch.zeros_like(input_ids)
    token_type_ids = torch.zeros_like(input_ids)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
        token_type_ids[row, length // 2 : length] = 1
        input_ids[row, length:] = 0
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}


def assert_close_where_real(ours: torch.Tensor, theirs: torch.Tensor, attention_mask: torch.Tensor, atol: float = 1e-5) -> None:
    """Compare [B, L, ...] tensors at real (non-padded) positions only."""
    real = attention_mask.bool()
    assert torch.isfinite(ours[real]).all()
    torch.testing.assert_close(ours[real], theirs[real], atol=atol, rtol=0)


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter redrawn (biases and LayerNorms included, which init leaves at 0 and 1),
    so that a weight loaded under the wrong name cannot go unnoticed; eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model.eval()
