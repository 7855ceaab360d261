"""Decoding strategies: greedy against transformers, beam search, n-gram bans, sampling, finished rows."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from prefine.errors import PrefineError
from prefine.generation.decoding import DecodingConfig, SpecialIds, ban_repeated_ngrams, filtered_logits, generate
from prefine.model import BertConfig
from prefine.model.encoder_decoder import BertEncoderDecoder

transformers = pytest.importorskip("transformers")

CONFIG = BertConfig(
    vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=48
)
IDS = SpecialIds(start=2, end=3, pad=0)


def tiny_model(seed: int = 0, end_bias: float = 0.0) -> BertEncoderDecoder:
    torch.manual_seed(seed)
    model = BertEncoderDecoder(CONFIG).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
        model.decoder.cls.predictions.bias[IDS.end] += end_bias  # how soon rows tend to finish
    return model


def random_inputs(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 12, (count,), generator=generator)
    ids = torch.zeros(count, int(lengths.max()), dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        ids[row, :length] = torch.randint(5, CONFIG.vocab_size, (length,), generator=generator)
        ids[row, 0], ids[row, length - 1] = IDS.start, IDS.end
    return ids, (ids != IDS.pad).long()


def reference_model(model: BertEncoderDecoder):
    config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(
        transformers.BertConfig(**dataclasses.asdict(CONFIG)), transformers.BertConfig(**dataclasses.asdict(CONFIG))
    )
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = IDS.start, IDS.pad, IDS.end
    reference = transformers.EncoderDecoderModel(config=config).eval()
    reference.load_state_dict(torch.nn.Module.state_dict(model), strict=False)
    return reference


def reference_generate(reference, ids, mask, **options) -> list[list[int]]:
    with torch.no_grad():
        output = reference.generate(input_ids=ids, attention_mask=mask, do_sample=False, **options)
    results = []
    for row in output.tolist():
        tokens = row[1:]
        results.append(tokens[: tokens.index(IDS.end)] if IDS.end in tokens else [token for token in tokens if token != IDS.pad])
    return results


@pytest.mark.parametrize("no_repeat_ngram_size", [0, 1])
def test_greedy_matches_transformers_generate_with_rows_finishing_at_different_steps(no_repeat_ngram_size):
    # A random decoder tends to repeat one token; banning repeats (size 1) makes rows end at many different steps.
    model = tiny_model(end_bias=2.0 if no_repeat_ngram_size else 3.0)
    ids, mask = random_inputs(20)
    ours = generate(model, ids, mask, DecodingConfig(no_repeat_ngram_size=no_repeat_ngram_size), 12, IDS)
    theirs = reference_generate(
        reference_model(model), ids, mask, max_new_tokens=12, num_beams=1, no_repeat_ngram_size=no_repeat_ngram_size
    )
    assert ours == theirs
    lengths = {len(tokens) for tokens in ours}
    assert len(lengths) >= (5 if no_repeat_ngram_size else 2) and min(lengths) < 12  # some rows ended early, others ran on


def test_min_new_tokens_and_no_repeat_ngram_match_transformers():
    model = tiny_model(seed=3, end_bias=3.0)
    ids, mask = random_inputs(8, seed=1)
    config = DecodingConfig(min_new_tokens=4, no_repeat_ngram_size=2)
    ours = generate(model, ids, mask, config, 15, IDS)
    theirs = reference_generate(reference_model(model), ids, mask, max_new_tokens=15, num_beams=1, min_new_tokens=4, no_repeat_ngram_size=2)
    assert ours == theirs
    for tokens in ours:
        assert len(tokens) >= 4
        bigrams = list(zip([IDS.start] + tokens, tokens))
        assert len(bigrams) == len(set(bigrams))


def test_beam_search_with_one_beam_is_greedy():
    model = tiny_model(seed=1, end_bias=1.5)
    ids, mask = random_inputs(12, seed=2)
    greedy = generate(model, ids, mask, DecodingConfig(), 10, IDS)
    assert generate(model, ids, mask, DecodingConfig(num_beams=1), 10, IDS) == greedy
    from prefine.generation import decoding

    with torch.inference_mode():
        beam_of_one = decoding._beam_search(model, model.encode(ids, mask), mask, DecodingConfig(num_beams=1), 10, IDS)
    assert beam_of_one == greedy


@pytest.mark.parametrize("early_stopping, length_penalty", [(True, 1.0), (False, 1.0), (False, 0.5), (False, 2.0)])
def test_beam_search_matches_transformers(early_stopping, length_penalty):
    # Banning repeated tokens makes hypotheses end at many lengths, so the length penalty decides between them.
    model = tiny_model(seed=0, end_bias=3.0)
    ids, mask = random_inputs(10, seed=3)
    config = DecodingConfig(num_beams=4, early_stopping=early_stopping, length_penalty=length_penalty, no_repeat_ngram_size=1)
    ours = generate(model, ids, mask, config, 10, IDS)
    theirs = reference_generate(
        reference_model(model),
        ids,
        mask,
        max_new_tokens=10,
        num_beams=4,
        early_stopping=early_stopping,
        length_penalty=length_penalty,
        no_repeat_ngram_size=1,
    )
    assert ours == theirs
    assert len({len(tokens) for tokens in ours}) >= 3


def test_ban_repeated_ngrams_bans_exactly_the_completions_of_seen_ngrams():
    history = torch.tensor([[2, 7, 8, 9, 7], [2, 5, 5, 6, 1]])
    logits = torch.zeros(2, 12)
    ban_repeated_ngrams(logits, history, 2)
    assert (logits[0] == float("-inf")).nonzero().flatten().tolist() == [8]  # "7 8" was seen; the last token is 7
    assert not torch.isinf(logits[1]).any()  # nothing followed a 1 before
    unigram = torch.zeros(1, 12)
    ban_repeated_ngrams(unigram, history[:1], 1)
    assert sorted((unigram[0] == float("-inf")).nonzero().flatten().tolist()) == [2, 7, 8, 9]


def test_top_k_and_top_p_filtering():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert (
        torch.isinf(filtered_logits(logits, 1.0, 2, 1.0)[0, 2:]).all() and torch.isfinite(filtered_logits(logits, 1.0, 2, 1.0)[0, :2]).all()
    )
    nucleus = filtered_logits(logits, 1.0, 0, 0.7)  # 0.5 + 0.3 reach 0.7; the rest go
    assert torch.isfinite(nucleus[0, :2]).all() and torch.isinf(nucleus[0, 2:]).all()
    assert torch.isfinite(filtered_logits(logits, 1.0, 0, 0.4)[0, 0]) and torch.isinf(filtered_logits(logits, 1.0, 0, 0.4)[0, 1:]).all()
    torch.testing.assert_close(filtered_logits(logits, 2.0, 0, 1.0), logits / 2)


def test_sampling_is_seeded_and_top_k_one_is_greedy():
    model = tiny_model(seed=5, end_bias=1.0)
    ids, mask = random_inputs(10, seed=5)
    sample = DecodingConfig(do_sample=True, temperature=1.5, seed=7)
    first = generate(model, ids, mask, sample, 10, IDS)
    assert generate(model, ids, mask, sample, 10, IDS) == first
    assert generate(model, ids, mask, dataclasses.replace(sample, seed=8), 10, IDS) != first
    assert first != generate(model, ids, mask, DecodingConfig(), 10, IDS)
    assert generate(model, ids, mask, DecodingConfig(do_sample=True, top_k=1, seed=3), 10, IDS) == generate(
        model, ids, mask, DecodingConfig(), 10, IDS
    )


def test_finished_rows_stop_costing_work():
    model = tiny_model(seed=0, end_bias=2.0)
    ids, mask = random_inputs(16, seed=6)
    rows_per_step: list[int] = []
    original = model.decode_step

    def counting_step(cache, tokens):
        rows_per_step.append(tokens.shape[0])
        return original(cache, tokens)

    model.decode_step = counting_step
    outputs = generate(model, ids, mask, DecodingConfig(no_repeat_ngram_size=1), 20, IDS)
    still_running = [sum(1 for tokens in outputs if len(tokens) >= step) for step in range(len(rows_per_step))]
    assert rows_per_step == still_running and rows_per_step[-1] < 16
    rows_per_step.clear()
    beams = generate(model, ids, mask, DecodingConfig(num_beams=3, early_stopping=True, no_repeat_ngram_size=1), 20, IDS)
    assert rows_per_step[0] == 48 and rows_per_step[-1] < 48 and len(beams) == 16


def test_streaming_callback_sees_every_token_in_order():
    model = tiny_model(seed=7, end_bias=1.0)
    ids, mask = random_inputs(3, seed=7)
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
    outputs = generate(
        model,
        ids,
        mask,
        DecodingConfig(),
        9,
        IDS,
        on_tokens=lambda rows, tokens: [seen[row].append(token) for row, token in zip(rows, tokens)],
    )
    assert [[token for token in seen[row] if token != IDS.end] for row in range(3)] == outputs


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_beams": 0}, "--num-beams"),
        ({"do_sample": True, "num_beams": 2}, "--do-sample"),
        ({"temperature": 0.0}, "--temperature"),
        ({"top_p": 1.5}, "--top-p"),
        ({"min_new_tokens": 5, "max_new_tokens": 3}, "--min-new-tokens"),
    ],
)
def test_bad_decoding_settings_fail_with_the_flag_named(options, message):
    with pytest.raises(PrefineError, match=message):
        DecodingConfig(**options)
