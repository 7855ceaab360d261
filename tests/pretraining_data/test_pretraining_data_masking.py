"""Dynamic masking: rates within binomial bounds, the 80/10/10 split, special tokens, whole words."""

from __future__ import annotations

import torch
from pretraining_data_helpers import within_sigmas

from prefine.model import IGNORE_LABEL
from prefine.pretraining_data.config import PretrainingDataConfig
from prefine.pretraining_data.masking import continuation_lookup, mask_tokens

VOCAB_SIZE = 1000
MASK_ID = 4


def synthetic_batch(rows: int = 256, width: int = 128, seed: int = 0):
    """Random normal tokens framed by [CLS] ... [SEP] and padded to random lengths."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, VOCAB_SIZE, (rows, width), generator=generator)
    lengths = torch.randint(8, width + 1, (rows,), generator=generator)
    columns = torch.arange(width)
    input_ids[columns >= lengths[:, None]] = 0
    input_ids[:, 0] = 2
    input_ids[torch.arange(rows), lengths - 1] = 3
    special = input_ids < 5
    return input_ids, special


def test_selection_rate_and_80_10_10_split_are_within_binomial_bounds():
    input_ids, special = synthetic_batch()
    config = PretrainingDataConfig()
    masked, labels = mask_tokens(input_ids, special, config, VOCAB_SIZE, torch.Generator().manual_seed(1))
    selected = labels != IGNORE_LABEL
    candidates = int((~special).sum())
    assert within_sigmas(int(selected.sum()), candidates, config.mlm_probability)
    assert torch.equal(labels[selected], input_ids[selected])

    chosen = int(selected.sum())
    became_mask = selected & (masked == MASK_ID)
    changed_to_other = selected & (masked != MASK_ID) & (masked != input_ids)
    # A random replacement equals the original token with probability 1 / (number of normal tokens).
    random_changes = config.random_token_prob * (1 - 1 / (VOCAB_SIZE - 5))
    assert within_sigmas(int(became_mask.sum()), chosen, config.mask_token_prob)
    assert within_sigmas(int(changed_to_other.sum()), chosen, random_changes)
    unchanged = 1 - config.mask_token_prob - random_changes
    assert within_sigmas(int((selected & (masked == input_ids)).sum()), chosen, unchanged)


def test_special_tokens_are_never_selected_and_replacements_are_never_special():
    input_ids, special = synthetic_batch(seed=2)
    config = PretrainingDataConfig(mlm_probability=0.5, mask_token_prob=0.0, random_token_prob=1.0)
    masked, labels = mask_tokens(input_ids, special, config, VOCAB_SIZE, torch.Generator().manual_seed(3))
    assert (labels[special] == IGNORE_LABEL).all()
    assert torch.equal(masked[special], input_ids[special])
    assert torch.equal(masked[labels == IGNORE_LABEL], input_ids[labels == IGNORE_LABEL])
    replaced = labels != IGNORE_LABEL
    assert (masked[replaced] >= 5).all() and (masked[replaced] < VOCAB_SIZE).all()
    assert len(torch.unique(masked[replaced])) > VOCAB_SIZE // 2, "random tokens spread over the vocabulary"


def test_masks_are_reproducible_from_the_generator_seed_and_may_be_empty():
    input_ids, special = synthetic_batch(rows=8, seed=4)
    config = PretrainingDataConfig()
    first = mask_tokens(input_ids, special, config, VOCAB_SIZE, torch.Generator().manual_seed(9))
    second = mask_tokens(input_ids, special, config, VOCAB_SIZE, torch.Generator().manual_seed(9))
    third = mask_tokens(input_ids, special, config, VOCAB_SIZE, torch.Generator().manual_seed(10))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[1], third[1])
    masked, labels = mask_tokens(input_ids, special, PretrainingDataConfig(mlm_probability=0.0), VOCAB_SIZE, torch.Generator())
    assert (labels == IGNORE_LABEL).all() and torch.equal(masked, input_ids)


def test_whole_word_masking_selects_words_together_at_the_same_rate():
    input_ids, special = synthetic_batch(seed=5)
    generator = torch.Generator().manual_seed(6)
    word_start = (torch.rand(input_ids.shape, generator=generator) < 0.4) & ~special
    # The first text token after [CLS] may be a continuation piece (a segment truncated from the front).
    word_start[:, 1] = False
    config = PretrainingDataConfig(whole_word_masking=True)
    _, labels = mask_tokens(input_ids, special, config, VOCAB_SIZE, torch.Generator().manual_seed(7), word_start_mask=word_start)
    selected = labels != IGNORE_LABEL
    assert not selected[special].any()

    selected_words = total_words = 0
    for row in range(input_ids.shape[0]):
        text = torch.nonzero(~special[row]).flatten().tolist()
        words: list[list[int]] = []
        for column in text:
            if word_start[row, column] or not words or special[row, column - 1]:
                words.append([])
            words[-1].append(column)
        for word in words:
            states = {bool(selected[row, column]) for column in word}
            assert len(states) == 1, "a word is selected whole or not at all"
            selected_words += states.pop()
        total_words += len(words)
    assert within_sigmas(selected_words, total_words, config.mlm_probability)


def test_continuation_lookup_marks_exactly_the_wordpiece_suffixes(tokenizer):
    lookup = continuation_lookup(tokenizer)
    assert lookup.shape == (tokenizer.get_vocab_size(),)
    for token, token_id in tokenizer.get_vocab().items():
        assert lookup[token_id] == token.startswith("##")
    assert lookup.any() and not lookup[:5].any()
