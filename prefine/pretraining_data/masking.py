"""Dynamic masking for the masked-LM objective, vectorized over a whole batch in torch.

Masks are drawn fresh for every batch (RoBERTa's dynamic masking) instead of being frozen into
the data as BERT's create_pretraining_data.py did with dupe_factor copies: the model sees new
masks every epoch and the cache stores no duplicates.

Selection is a Bernoulli(mlm_probability) draw per non-special token. BERT instead picks exactly
round(p * n) positions per sequence, because its TPU input pipeline needed fixed-size arrays of
masked positions; we have no such constraint, and independent draws need no per-sequence work,
so a whole [B, L] batch is masked with a handful of tensor ops. The expected rate is the same.

Of the selected tokens, mask_token_prob become [MASK], random_token_prob become a random
non-special token, and the rest stay unchanged; the model must predict all of them. The random
and unchanged tokens keep the model from learning that only [MASK] positions matter, since
[MASK] never appears at fine-tuning time.

Whole-word masking selects words instead of tokens (a word is a token that does not start with
the continuation prefix "##" plus the "##" pieces after it): each word is selected with
probability mlm_probability, which keeps the expected share of selected tokens the same, and
all its pieces are predicted together, so the model cannot solve "##ing" from its visible
neighbour piece. As in BERT's code, the 80/10/10 replacement is still decided per token.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from prefine.labels import IGNORE_LABEL
from prefine.pretraining_data.config import PretrainingDataConfig


def continuation_lookup(tokenizer: Tokenizer) -> np.ndarray:
    """bool [vocab_size]: True for WordPiece continuation pieces ("##ing")."""
    prefix = getattr(tokenizer.model, "continuing_subword_prefix", None) or "##"
    lookup = np.zeros(tokenizer.get_vocab_size(with_added_tokens=True), dtype=bool)
    for token, token_id in tokenizer.get_vocab(with_added_tokens=True).items():
        if token.startswith(prefix) and len(token) > len(prefix):
            lookup[token_id] = True
    return lookup


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    config: PretrainingDataConfig,
    vocab_size: int,
    generator: torch.Generator,
    first_normal_token_id: int = 5,
    word_start_mask: torch.Tensor | None = None,
    mask_token_id: int = 4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked_input_ids, mlm_labels), both LongTensor[B, L].

    input_ids: LongTensor[B, L]; special_tokens_mask: BoolTensor[B, L], True at [CLS], [SEP],
    [PAD] (never selected); word_start_mask: BoolTensor[B, L], True where a word starts, needed
    when config.whole_word_masking. mlm_labels holds the original id at predicted positions and
    IGNORE_LABEL elsewhere. The random draws have the shape of the batch, not of its content, so
    the same generator state and shape always give the same masks.
    """
    shape = input_ids.shape
    selection_draw = torch.rand(shape, generator=generator)
    if config.whole_word_masking:
        if word_start_mask is None:
            raise ValueError("whole-word masking needs word_start_mask")
        # A segment can begin with a "##" piece (truncated from the front); it then starts a word.
        after_special = F.pad(special_tokens_mask[:, :-1], (1, 0), value=True)
        starts = word_start_mask | special_tokens_mask | after_special
        word_index = torch.cumsum(starts.long(), dim=1) - 1
        # Every piece reads the draw at its word's index, so a word is selected as one.
        selection_draw = selection_draw.gather(1, word_index)
    selected = (selection_draw < config.mlm_probability) & ~special_tokens_mask

    replacement_draw = torch.rand(shape, generator=generator)
    random_ids = torch.randint(first_normal_token_id, vocab_size, shape, generator=generator, dtype=input_ids.dtype)
    use_mask = selected & (replacement_draw < config.mask_token_prob)
    use_random = (
        selected & (replacement_draw >= config.mask_token_prob) & (replacement_draw < config.mask_token_prob + config.random_token_prob)
    )
    masked_input_ids = torch.where(use_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    masked_input_ids = torch.where(use_random, random_ids, masked_input_ids)
    mlm_labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_LABEL))
    return masked_input_ids, mlm_labels
