"""The BERT encoder-decoder: transformers' EncoderDecoderModel as reference, cached decoding, BERTShare, warm start."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from prefine.interop.encoder_decoder import warm_start
from prefine.model import IGNORE_LABEL, BertConfig, BertForPreTraining, count_parameters
from prefine.model.encoder_decoder import BertEncoderDecoder

transformers = pytest.importorskip("transformers")

CONFIG = BertConfig(
    vocab_size=90, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=40
)
START, END, PAD = 2, 3, 0


def tiny_model(share: bool = False, seed: int = 0) -> BertEncoderDecoder:
    torch.manual_seed(seed)
    model = BertEncoderDecoder(CONFIG, share_encoder_decoder=share).eval()
    with torch.no_grad():  # BERT's init gives near-uniform logits; larger weights make every position count
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model


def reference_model(model: BertEncoderDecoder):
    encoder = transformers.BertConfig(**dataclasses.asdict(CONFIG))
    config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(encoder, transformers.BertConfig(**dataclasses.asdict(CONFIG)))
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = START, PAD, END
    reference = transformers.EncoderDecoderModel(config=config).eval()
    missing, unexpected = reference.load_state_dict(torch.nn.Module.state_dict(model), strict=False)
    assert not unexpected and set(missing) <= {"decoder.cls.predictions.decoder.weight", "decoder.cls.predictions.decoder.bias"}
    return reference


def padded_sources() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[START, 5, 6, 7, 8, END, PAD, PAD], [START, 9, 10, 11, 12, 13, 14, END], [START, 15, END, PAD, PAD, PAD, PAD, PAD]])
    return ids, (ids != PAD).long()


def test_parameter_names_and_logits_match_transformers_encoder_decoder():
    model = tiny_model()
    reference = reference_model(model)
    ids, mask = padded_sources()
    decoder_ids = torch.tensor([[START, 20, 21, 22, 23], [START, 24, 25, PAD, PAD], [START, 26, 27, 28, PAD]])
    with torch.no_grad():
        ours = model(ids, mask, decoder_ids).logits
        theirs = reference(
            input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, decoder_attention_mask=(decoder_ids != PAD).long()
        ).logits
    real = decoder_ids != PAD
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-5)


def test_loss_counts_labelled_target_tokens_only():
    model = tiny_model()
    ids, mask = padded_sources()
    decoder_ids = torch.tensor([[START, 20, 21], [START, 24, PAD], [START, 26, 27]])
    labels = torch.tensor([[20, 21, END], [24, END, IGNORE_LABEL], [26, 27, END]])
    with torch.no_grad():
        output = model(ids, mask, decoder_ids, labels)
        logits = model(ids, mask, decoder_ids).logits
    keep = labels != IGNORE_LABEL
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    assert output.num_target_tokens == 8
    torch.testing.assert_close(output.loss, expected)
    changed = labels.clone()
    with torch.no_grad():
        # Whatever sits at an ignored position (even a garbage token id) cannot change the loss.
        padded_input = decoder_ids.clone()
        padded_input[1, 2] = 77
        assert torch.allclose(model(ids, mask, padded_input, changed).loss, output.loss)


@pytest.mark.parametrize("copies", [1, 4], ids=["3 rows", "12 rows"])
@pytest.mark.parametrize("first_rows", [None, 1], ids=["all", "one row"])
def test_cached_decoding_gives_the_logits_of_full_decoding(copies, first_rows):
    # 1, 3 and 12 rows: a step computes its linear layers in a different orientation for 2-8 rows (FEW_ROWS).
    model = tiny_model()
    ids, mask = padded_sources()
    targets = torch.tensor([[START, 30, 31, 32, 33, 34], [START, 35, 36, 37, 38, 39], [START, 40, 41, 42, 43, 44]])
    ids, mask, targets = (tensor.repeat(copies, 1)[:first_rows] for tensor in (ids, mask, targets))
    with torch.no_grad():
        full = model(ids, mask, targets).logits
        cache = model.start_decoding(model.encode(ids, mask), mask, max_new_tokens=targets.shape[1])
        stepped = torch.stack([model.decode_step(cache, targets[:, position]) for position in range(targets.shape[1])], dim=1)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-5)


def test_dropping_rows_from_the_cache_keeps_the_other_rows_exact():
    model = tiny_model()
    ids, mask = padded_sources()
    targets = torch.tensor([[START, 30, 31, 32, 33], [START, 35, 36, 37, 38], [START, 40, 41, 42, 43]])
    with torch.no_grad():
        full = model(ids, mask, targets).logits
        cache = model.start_decoding(model.encode(ids, mask), mask, max_new_tokens=5)
        model.decode_step(cache, targets[:, 0])
        model.decode_step(cache, targets[:, 1])
        cache.keep_rows(torch.tensor([2, 0]))  # row 1 finished; rows 2 and 0 continue, reordered
        assert cache.rows == 2 and cache.self_keys[0].shape[0] == 2
        later = torch.stack([model.decode_step(cache, targets[[2, 0], position]) for position in (2, 3, 4)], dim=1)
    torch.testing.assert_close(later, full[[2, 0], 2:], atol=1e-5, rtol=1e-5)


def test_shared_encoder_decoder_stores_shared_weights_once_and_reloads():
    shared, separate = tiny_model(share=True), tiny_model()
    state = shared.state_dict()
    assert not any(
        name.startswith("decoder.bert.embeddings.") or ".attention.self." in name and name.startswith("decoder.") for name in state
    )
    assert any(".crossattention." in name for name in state)
    assert count_parameters(shared) < 0.62 * count_parameters(separate)
    assert shared.decoder.bert.encoder.layer[0].attention is shared.encoder.encoder.layer[0].attention
    reloaded = BertEncoderDecoder(CONFIG, share_encoder_decoder=True).eval()
    reloaded.load_state_dict(state)
    ids, mask = padded_sources()
    decoder_ids = torch.tensor([[START, 20], [START, 21], [START, 22]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids, mask, decoder_ids).logits, shared(ids, mask, decoder_ids).logits)


def test_warm_start_copies_bert_into_encoder_decoder_and_lm_head_leaving_cross_attention_fresh():
    torch.manual_seed(1)
    bert = BertForPreTraining(CONFIG)
    model = BertEncoderDecoder(CONFIG)
    fresh_cross = model.decoder.bert.encoder.layer[0].crossattention.self.query.weight.clone()
    new_parts = warm_start(model, bert.state_dict())
    assert new_parts == ["cross-attention"]
    block = bert.bert.encoder.layer[1].attention.self.value.weight
    assert torch.equal(model.encoder.encoder.layer[1].attention.self.value.weight, block)
    assert torch.equal(model.decoder.bert.encoder.layer[1].attention.self.value.weight, block)
    assert torch.equal(model.decoder.bert.embeddings.word_embeddings.weight, bert.bert.embeddings.word_embeddings.weight)
    assert torch.equal(model.decoder.cls.predictions.transform.dense.weight, bert.cls.predictions.transform.dense.weight)
    assert torch.equal(model.decoder.bert.encoder.layer[0].crossattention.self.query.weight, fresh_cross)
    # The LM head projects with the decoder's own word embeddings (tied), not a copy.
    assert model.decoder.cls.predictions._word_embeddings[0] is model.decoder.bert.embeddings.word_embeddings


def test_decoding_runs_under_bf16_autocast():
    model = tiny_model()
    ids, mask = padded_sources()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        cache = model.start_decoding(model.encode(ids, mask), mask, max_new_tokens=2)
        logits = model.decode_step(cache, torch.full((3,), START))
        loss = model(ids, mask, torch.full((3, 2), START), torch.full((3, 2), 5)).loss
    assert logits.shape == (3, CONFIG.vocab_size) and torch.isfinite(logits.float()).all() and torch.isfinite(loss)


def test_beams_of_one_input_share_its_cross_attention_cache():
    model = tiny_model()
    ids, mask = padded_sources()
    # Two beams per input, each with its own tokens; the reference runs every beam as its own row.
    targets = torch.tensor([[START, 30 + row, 40 + row, 50 + row] for row in range(6)])
    with torch.no_grad():
        full = model(ids.repeat_interleave(2, 0), mask.repeat_interleave(2, 0), targets).logits
        cache = model.start_decoding(model.encode(ids, mask), mask, max_new_tokens=4, rows_per_input=2)
        assert cache.rows == 6 and cache.cross_keys[0].shape[0] == 3
        first = [model.decode_step(cache, targets[:, position]) for position in (0, 1)]
        # Input 1 is done; the beams of inputs 2 and 0 go on, beam order swapped within input 2.
        rows = torch.tensor([5, 4, 0, 1])
        cache.keep_rows(rows, inputs=torch.tensor([2, 0]))
        later = [model.decode_step(cache, targets[rows, position]) for position in (2, 3)]
    torch.testing.assert_close(torch.stack(first, 1), full[:, :2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(later, 1), full[rows, 2:], atol=1e-5, rtol=1e-5)


def test_every_trainable_parameter_gets_a_gradient_so_ddp_needs_no_unused_parameter_search():
    model = tiny_model().train()
    ids, mask = padded_sources()
    decoder_ids = torch.tensor([[START, 20, 21], [START, 24, 25], [START, 26, 27]])
    model(ids, mask, decoder_ids, torch.tensor([[20, 21, END]] * 3)).loss.backward()
    missing = [name for name, parameter in model.named_parameters() if parameter.requires_grad and parameter.grad is None]
    assert not missing
    assert not model.encoder.pooler.dense.weight.requires_grad  # unused by generation, kept for transformers' layout


def test_the_cpu_attention_of_a_decoding_step_equals_sdpa():
    from prefine.model.encoder_decoder import _attend_few_queries

    torch.manual_seed(0)
    query, cache = torch.randn(3, 4, 2, 8), torch.randn(3, 4, 10, 8)
    keys, values = cache[:, :, :7], torch.randn(3, 4, 10, 8)[:, :, :7]  # cache slices, as decoding reads them
    bias = torch.zeros(3, 1, 1, 7)
    bias[1, :, :, 4:] = torch.finfo(torch.float32).min
    for mask in (None, bias):
        expected = torch.nn.functional.scaled_dot_product_attention(query, keys, values, attn_mask=mask)
        torch.testing.assert_close(_attend_few_queries(query, keys, values, mask), expected, atol=1e-5, rtol=1e-5)


def _first_step_logits(model: BertEncoderDecoder) -> torch.Tensor:
    ids, mask = padded_sources()
    with torch.no_grad():
        cache = model.start_decoding(model.encode(ids, mask), mask, max_new_tokens=1)
        return model.decode_step(cache, torch.full((3,), START))


def _full_logits(model: BertEncoderDecoder) -> torch.Tensor:
    ids, mask = padded_sources()
    with torch.no_grad():
        return model(ids, mask, torch.full((3, 1), START)).logits[:, 0]


def test_derived_decoding_weights_follow_every_kind_of_weight_change():
    """The fused/transposed weights kept between generation calls must never outlive the weights they came from."""
    model = tiny_model()
    _first_step_logits(model)
    assert model.__dict__.get("_decoding_weights") is not None  # kept in eval mode
    # A fused AdamW step (what prefine trains with) does not bump version counters: train() must drop the copies.
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    model.train()
    ids, mask = padded_sources()
    model(ids, mask, torch.full((3, 2), START), torch.full((3, 2), 5)).loss.backward()
    optimizer.step()
    model.eval()
    torch.testing.assert_close(_first_step_logits(model), _full_logits(model), atol=1e-5, rtol=1e-5)
    # In-place edits in eval mode bump the version counter.
    with torch.no_grad():
        model.decoder.bert.embeddings.word_embeddings.weight.mul_(1.5)
        model.decoder.bert.encoder.layer[0].crossattention.self.key.bias.add_(0.3)
    torch.testing.assert_close(_first_step_logits(model), _full_logits(model), atol=1e-5, rtol=1e-5)
    # load_state_dict in eval mode.
    model.load_state_dict(tiny_model(seed=7).state_dict())
    torch.testing.assert_close(_first_step_logits(model), _full_logits(model), atol=1e-5, rtol=1e-5)


def test_cross_attention_cache_is_projected_at_real_source_tokens_and_zero_at_padding():
    model = tiny_model()
    ids, mask = padded_sources()
    with torch.no_grad():
        memory = model.encode(ids, mask)
        cache = model.start_decoding(memory, mask, max_new_tokens=1)
        keys, values = model._cross_key_values(memory)
    real = mask.bool()[:, None, :, None].expand_as(keys[0])
    for ours, theirs in zip(cache.cross_keys + cache.cross_values, keys + values):
        torch.testing.assert_close(ours[real], theirs[real])
        assert not ours[~real].any()
