"""Decoding strategies for the encoder-decoder: greedy, beam search and sampling, batched.

All three run on the model's incremental path (`BertEncoderDecoder.start_decoding` /
`decode_step`): the input is encoded once, each step feeds one token per row and reuses every
earlier key and value from the cache, so a step's cost does not grow with the text already
produced (beyond attention reading the cached keys). Rows that finish stop costing work: greedy
and sampling drop a row from the cache as soon as it emits [SEP], beam search drops all beams of
an input once its search is decided.

The knobs mean what they mean in transformers' `generate`:

- `--min-new-tokens` forbids [SEP] until that many tokens exist; `--no-repeat-ngram-size N`
  forbids any token that would repeat an N-gram of the output so far (the start token counts);
- beam search keeps `--num-beams` hypotheses and scores a finished one by its summed log
  probability divided by (generated length ** `--length-penalty`); with `--early-stopping` an
  input is done as soon as it has `--num-beams` finished hypotheses, otherwise only once no
  running beam can still beat the worst of them;
- sampling applies `--temperature`, then `--top-k`, then `--top-p` (nucleus) and draws from a
  generator seeded with `--seed`, so the same command gives the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from prefine.config import option
from prefine.errors import PrefineError

# Called after every greedy/sampling step with the batch rows still decoding and their new tokens.
TokenCallback = Callable[[list[int], list[int]], None]


@dataclass
class DecodingConfig:
    max_new_tokens: int = option(0, "generation: most tokens to generate per input ([SEP] included); 0: the run's --max-target-length")
    min_new_tokens: int = option(0, "generation: forbid ending ([SEP]) before this many tokens")
    num_beams: int = option(1, "generation: beam width; 1 is greedy (or sampling with --do-sample)")
    length_penalty: float = option(
        1.0, "generation: beam scores are divided by length ** this; above 1 favours longer outputs, below 1 shorter"
    )
    no_repeat_ngram_size: int = option(0, "generation: never repeat an n-gram of this size in the output (0: allowed)")
    early_stopping: bool = option(
        False, "generation: end a beam search once --num-beams hypotheses have finished, even if a running beam might still win"
    )
    do_sample: bool = option(False, "generation: sample tokens instead of taking the most likely one")
    temperature: float = option(1.0, "generation (sampling): divide logits by this; below 1 sharper, above 1 more random")
    top_k: int = option(0, "generation (sampling): draw only among the k most likely tokens (0: all)")
    top_p: float = option(
        1.0, "generation (sampling): draw only among the most likely tokens whose probabilities sum to p (nucleus sampling)"
    )
    seed: int = option(0, "generation (sampling): random seed; the same seed and inputs give the same text")

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0 or self.min_new_tokens < 0 or self.no_repeat_ngram_size < 0 or self.top_k < 0:
            raise PrefineError("--max-new-tokens, --min-new-tokens, --no-repeat-ngram-size and --top-k cannot be negative")
        if self.num_beams < 1:
            raise PrefineError(f"--num-beams {self.num_beams} must be at least 1")
        if self.do_sample and self.num_beams > 1:
            raise PrefineError("--do-sample draws one sequence per input; drop --num-beams (beam search is deterministic)")
        if self.temperature <= 0:
            raise PrefineError(f"--temperature {self.temperature} must be positive (for the most likely token, drop --do-sample)")
        if not 0.0 < self.top_p <= 1.0:
            raise PrefineError(f"--top-p {self.top_p} must be in (0, 1]")
        if self.max_new_tokens and self.min_new_tokens > self.max_new_tokens:
            raise PrefineError(f"--min-new-tokens {self.min_new_tokens} exceeds --max-new-tokens {self.max_new_tokens}")


@dataclass(frozen=True)
class SpecialIds:
    start: int  # the decoder's first input ([CLS], transformers' decoder_start_token_id)
    end: int  # ends a generated text ([SEP], eos_token_id)
    pad: int


def generate(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    config: DecodingConfig,
    max_new_tokens: int,
    ids: SpecialIds,
    on_tokens: TokenCallback | None = None,
) -> list[list[int]]:
    """Generated token ids for each input row ([SEP] and anything after it left out)."""
    with torch.inference_mode():
        memory = model.encode(input_ids, attention_mask)
        if config.num_beams > 1:
            return _beam_search(model, memory, attention_mask, config, max_new_tokens, ids)
        return _greedy_or_sample(model, memory, attention_mask, config, max_new_tokens, ids, on_tokens)


def ban_repeated_ngrams(logits: torch.Tensor, history: torch.Tensor, size: int) -> None:
    """Set to -inf every token that would complete an n-gram already in `history` [R, t] (in place)."""
    length = history.shape[1]
    if size <= 0 or length < size:
        return
    windows = history.unfold(1, size, 1)  # [R, t - size + 1, size]: every n-gram so far
    prefix = history[:, length - size + 1 :]  # the last size - 1 tokens, which the next token would extend
    matches = (windows[:, :, :-1] == prefix[:, None, :]).all(-1)
    rows, starts = matches.nonzero(as_tuple=True)
    logits[rows, windows[rows, starts, -1]] = float("-inf")


def _forbid_end(logits: torch.Tensor, step: int, config: DecodingConfig, end: int) -> None:
    if step < config.min_new_tokens:
        logits[:, end] = float("-inf")


def filtered_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Logits after temperature, top-k and top-p (nucleus) filtering; removed tokens get -inf."""
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth_best = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probabilities = ordered.softmax(-1)
        # Drop a token when the more likely ones already cover top_p; the most likely always stays.
        covered_before = probabilities.cumsum(-1) - probabilities
        ordered = ordered.masked_fill(covered_before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, ordered)
    return logits


def _greedy_or_sample(model, memory, memory_mask, config, max_new_tokens, ids, on_tokens) -> list[list[int]]:
    rows = memory.shape[0]
    cache = model.start_decoding(memory, memory_mask, max_new_tokens)
    current = torch.full((rows,), ids.start, dtype=torch.long, device=memory.device)
    history = current[:, None]
    alive = list(range(rows))  # the batch row of each cache row
    outputs: list[list[int]] = [[] for _ in range(rows)]
    generator = None
    if config.do_sample:
        generator = torch.Generator(device=memory.device)
        generator.manual_seed(config.seed)
    for step in range(max_new_tokens):
        logits = model.decode_step(cache, current).float()
        _forbid_end(logits, step, config, ids.end)
        ban_repeated_ngrams(logits, history, config.no_repeat_ngram_size)
        if generator is not None:
            probabilities = filtered_logits(logits, config.temperature, config.top_k, config.top_p).softmax(-1)
            chosen = torch.multinomial(probabilities, 1, generator=generator)[:, 0]
        else:
            chosen = logits.argmax(-1)
        tokens = chosen.tolist()
        if on_tokens is not None:
            on_tokens(alive, tokens)
        finished = [index for index, token in enumerate(tokens) if token == ids.end]
        for row, token in zip(alive, tokens):
            if token != ids.end:
                outputs[row].append(token)
        if config.no_repeat_ngram_size:
            history = torch.cat([history, chosen[:, None]], dim=1)
        if finished:
            keep = [index for index, token in enumerate(tokens) if token != ids.end]
            if not keep:
                break
            kept = torch.tensor(keep, device=memory.device)
            cache.keep_rows(kept)
            chosen, history = chosen[kept], history[kept]
            alive = [alive[index] for index in keep]
        current = chosen
    return outputs


class _Hypotheses:
    """The best finished hypotheses of one input, at most `size`, by length-normalised score."""

    def __init__(self, size: int, length_penalty: float):
        self.size = size
        self.length_penalty = length_penalty
        self.entries: list[tuple[float, list[int]]] = []

    def normalised(self, summed_log_probability: float, length: int) -> float:
        return summed_log_probability / (length**self.length_penalty)

    def add(self, tokens: list[int], summed_log_probability: float, length: int) -> None:
        score = self.normalised(summed_log_probability, length)
        if len(self.entries) < self.size or score > self.entries[-1][0]:
            self.entries.append((score, tokens))
            self.entries.sort(key=lambda entry: -entry[0])
            del self.entries[self.size :]

    def is_done(self, best_running: float, length: int, early_stopping: bool) -> bool:
        if len(self.entries) < self.size:
            return False
        if early_stopping:
            return True
        return self.entries[-1][0] >= self.normalised(best_running, length)

    def best(self) -> list[int]:
        return self.entries[0][1]


def _beam_search(model, memory, memory_mask, config, max_new_tokens, ids) -> list[list[int]]:
    batch, beams = memory.shape[0], config.num_beams
    device = memory.device
    cache = model.start_decoding(memory, memory_mask, max_new_tokens, rows_per_input=beams)
    current = torch.full((batch * beams,), ids.start, dtype=torch.long, device=device)
    history = current[:, None]
    # All beams start identical; only the first may expand at step 0, or the top-k would be k copies.
    beam_scores = torch.zeros(batch, beams, device=device)
    beam_scores[:, 1:] = float("-inf")
    alive = list(range(batch))  # the input of each group of `beams` cache rows
    hypotheses = [_Hypotheses(beams, config.length_penalty) for _ in range(batch)]
    candidate_rank = torch.arange(2 * beams, device=device)
    for step in range(max_new_tokens):
        log_probabilities = model.decode_step(cache, current).float().log_softmax(-1)
        _forbid_end(log_probabilities, step, config, ids.end)
        ban_repeated_ngrams(log_probabilities, history, config.no_repeat_ngram_size)
        groups, vocabulary = len(alive), log_probabilities.shape[-1]
        scores = (log_probabilities + beam_scores.view(-1, 1)).view(groups, beams * vocabulary)
        top_scores, top_ids = scores.topk(2 * beams, dim=1)
        origins, tokens = top_ids // vocabulary, top_ids % vocabulary
        is_end = tokens == ids.end
        length = step + 1
        # A hypothesis ends when [SEP] ranks among the top `beams` candidates of its input.
        for group, rank in (is_end & (candidate_rank < beams)).nonzero().tolist():
            row = group * beams + int(origins[group, rank])
            hypotheses[alive[group]].add(history[row, 1:].tolist(), float(top_scores[group, rank]), length)
        # The running beams: the best `beams` candidates that do not end (2 x beams always holds enough).
        running = torch.argsort(is_end.long() * (2 * beams) + candidate_rank, dim=1)[:, :beams]
        next_scores, next_tokens = top_scores.gather(1, running), tokens.gather(1, running)
        parent_rows = (torch.arange(groups, device=device)[:, None] * beams + origins.gather(1, running)).view(-1)
        best_running = next_scores[:, 0].tolist()
        undecided = [
            group for group in range(groups) if not hypotheses[alive[group]].is_done(best_running[group], length, config.early_stopping)
        ]
        if step == max_new_tokens - 1 or not undecided:
            history = torch.cat([history.index_select(0, parent_rows), next_tokens.view(-1, 1)], dim=1)
            for group in undecided:
                for beam in range(beams):  # out of tokens: running beams compete with the finished ones
                    hypotheses[alive[group]].add(history[group * beams + beam, 1:].tolist(), float(next_scores[group, beam]), length)
            break
        kept_groups = None
        if len(undecided) < groups:
            kept_groups = torch.tensor(undecided, device=device)
            parent_rows = parent_rows.view(groups, beams).index_select(0, kept_groups).view(-1)
            next_scores, next_tokens = next_scores.index_select(0, kept_groups), next_tokens.index_select(0, kept_groups)
            alive = [alive[group] for group in undecided]
        cache.keep_rows(parent_rows, kept_groups)
        history = torch.cat([history.index_select(0, parent_rows), next_tokens.view(-1, 1)], dim=1)
        beam_scores = next_scores
        current = next_tokens.view(-1)
    return [hypothesis.best() if hypothesis.entries else [] for hypothesis in hypotheses]


__all__ = ["DecodingConfig", "SpecialIds", "TokenCallback", "ban_repeated_ngrams", "filtered_logits", "generate"]
