"""Choose the model size and vocabulary a pre-training time budget can afford (`prefine pretrain --preset auto`).

A user with a CPU and an hour faces one decision before any other: how big a model, how big a
vocabulary. Too big and the budget ends while masked LM is still on its unigram plateau (a mini
pre-trained 40 minutes on 58 MB of Korean reviews fine-tuned no better than random weights);
too small and a GPU hour is wasted. `--preset auto` (the default under `--max-time`) decides
from three measured inputs, and prints the choice and its reason in one line:

- **Vocabulary** from the corpus's size in words (whitespace-separated), counted in one pass
  before the tokenizer trains: a row of the embedding table only learns from the text it
  occurs in, so a small corpus spreads over a large vocabulary leaves most rows near their
  random start while each costs softmax work at every masked token. `choose_vocab_size` holds
  the thresholds; `--vocab-size` or `--tokenizer` overrides.
- **Model** from how many tokens each preset can read in the budget on *this* machine: a few
  timed training steps per preset on the run's own batches (`measure_tokens_per_second`,
  smallest first, stopping at the first that cannot afford itself, since a larger one only
  reads slower and needs more). `choose_preset` then takes the largest preset whose budget
  reaches `TOKENS_PER_PARAMETER` tokens per non-embedding parameter (Chinchilla's
  compute-optimal ratio, Hoffmann et al. 2022), counting at most `USEFUL_EPOCHS` passes over
  the corpus (Muennighoff et al. 2023: beyond about four, repeated text is worth far less than
  new text), and tiny when none does.

`choose_vocab_size` and `choose_preset` are pure functions of their inputs, so a recorded choice
(run.json's "budget_choice": inputs, choice, reason) can be re-derived; only the timing varies
between machines, which is the point. benchmarks/objectives.py measures the choice against the
alternatives (docs/pretraining-on-a-budget.md, "Size and vocabulary for a budget").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from prefine.model import BertConfig, preset_config
from prefine.training import TrainingConfig, autocast_context
from prefine.training.optim import build_optimizer

AUTO_PRESET = "auto"
# Candidates in increasing size; "large" is left out: no budget a user gives `--max-time` on the
# machines prefine targets affords it, and measuring it would cost minutes of the budget.
CANDIDATE_PRESETS = ("tiny", "mini", "small", "medium", "base")
TOKENS_PER_PARAMETER = 20.0
USEFUL_EPOCHS = 4.0
# (fewer words than this, vocabulary size); at or above the last threshold, BERT's 30,522.
VOCABULARY_BY_CORPUS_WORDS = ((10_000_000, 8_000), (100_000_000, 16_000))
LARGE_CORPUS_VOCABULARY = 30_522
# Steps timed per candidate after one untimed warm-up step (allocations, kernel selection).
TIMED_STEPS = 3


@dataclass(frozen=True)
class PresetChoice:
    preset: str
    reason: str


def non_embedding_parameters(config: BertConfig) -> int:
    """Weights of the encoder blocks (attention and feed-forward matrices): what compute-optimal ratios count."""
    per_layer = 4 * config.hidden_size**2 + 2 * config.hidden_size * config.intermediate_size
    return config.num_hidden_layers * per_layer


def _count(value: float) -> str:
    return f"{value / 1e6:.1f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"


def choose_vocab_size(corpus_words: int) -> tuple[int, str]:
    """The vocabulary size for a corpus of `corpus_words` words, and the reason in a few words."""
    for limit, size in VOCABULARY_BY_CORPUS_WORDS:
        if corpus_words < limit:
            return size, f"{_count(corpus_words)} words of corpus (< {_count(limit)})"
    return LARGE_CORPUS_VOCABULARY, f"{_count(corpus_words)} words of corpus"


def _afford(preset: str, rate: float, budget_seconds: float, corpus_tokens: int) -> tuple[bool, str]:
    """Whether the budget reaches the tokens `preset` needs at `rate` tokens/s, and the arithmetic in words."""
    readable = rate * budget_seconds
    useful = min(readable, USEFUL_EPOCHS * corpus_tokens)
    needed = TOKENS_PER_PARAMETER * non_embedding_parameters(preset_config(preset))
    summary = (
        f"{preset} reads {_count(readable)} tokens at {rate:,.0f} tokens/s"
        + (f" ({_count(useful)} useful: {USEFUL_EPOCHS:.0f} passes over the corpus)" if useful < readable else "")
        + f" and needs {_count(needed)} ({TOKENS_PER_PARAMETER:.0f} per encoder weight)"
    )
    return useful >= needed, summary


def choose_preset(budget_seconds: float, corpus_tokens: int, tokens_per_second: dict[str, float]) -> PresetChoice:
    """The largest measured preset the budget affords (see the module docstring); tiny when none does.

    `tokens_per_second` holds the presets measured so far, smallest first; a preset missing
    from it was not measured because a smaller one already could not afford itself.
    """
    chosen, reason = CANDIDATE_PRESETS[0], ""
    for preset in CANDIDATE_PRESETS:
        if preset not in tokens_per_second:
            break
        affordable, summary = _afford(preset, tokens_per_second[preset], budget_seconds, corpus_tokens)
        if not affordable:
            reason = f"{summary}: the smallest preset" if preset == CANDIDATE_PRESETS[0] else f"{reason}; {summary}"
            break
        chosen, reason = preset, summary
    return PresetChoice(chosen, reason)


def presets_worth_measuring(budget_seconds: float, corpus_tokens: int, measure: Callable[[str], float]) -> dict[str, float]:
    """Tokens/s of each candidate, smallest first, up to the first the budget cannot afford."""
    rates: dict[str, float] = {}
    for preset in CANDIDATE_PRESETS:
        rates[preset] = measure(preset)
        if not _afford(preset, rates[preset], budget_seconds, corpus_tokens)[0]:
            break
    return rates


def measure_tokens_per_second(
    model: torch.nn.Module, task: Any, training: TrainingConfig, device: torch.device, tokens_per_step: int
) -> float:
    """Tokens per second of full training steps (forward, backward, optimizer) of `model` on `task`'s batches.

    The steps are the run's own: its batches, its precision and optimizer; the model is thrown
    away afterwards, so nothing here touches the run's weights or its random stream's use.
    """
    if training.num_threads:
        torch.set_num_threads(training.num_threads)
    model.to(device).train()
    optimizer = build_optimizer(model, training, device)
    position = task.start_position()
    durations = []
    for step in range(TIMED_STEPS + 1):
        batch, position = task.batch_at(position, 0, 1)
        batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
        started = time.perf_counter()
        with autocast_context(device, training.precision):
            loss, _ = task.loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step > 0:
            durations.append(time.perf_counter() - started)
    durations.sort()
    return tokens_per_step / durations[len(durations) // 2]


def count_words(sentences: Iterable[str]) -> int:
    return sum(len(sentence.split()) for sentence in sentences)


def choice_record(
    corpus_words: int | None,
    vocab_size: int,
    vocab_reason: str,
    budget_seconds: float,
    corpus_tokens: int,
    rates: dict[str, float],
    choice: PresetChoice,
) -> dict[str, Any]:
    """What run.json records about an automatic choice: its inputs and the rule's constants, so it can be re-derived."""
    return {
        "inputs": {
            "budget_seconds": budget_seconds,
            "corpus_words": corpus_words,
            "corpus_tokens": corpus_tokens,
            "measured_tokens_per_second": rates,
        },
        "rule": {
            "tokens_per_parameter": TOKENS_PER_PARAMETER,
            "useful_epochs": USEFUL_EPOCHS,
            "vocabulary_by_corpus_words": [list(pair) for pair in VOCABULARY_BY_CORPUS_WORDS],
        },
        "vocab_size": vocab_size,
        "vocab_reason": vocab_reason,
        **asdict(choice),
    }
