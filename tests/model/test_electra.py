"""ELECTRA's model: replaced/original labels, no loss on padding, shared embeddings, no gradient through sampling."""

from __future__ import annotations

import pytest
import torch

from prefine.errors import PrefineError
from prefine.model import IGNORE_LABEL, preset_config
from prefine.model.electra import ElectraObjectiveConfig, ElectraPreTrainingModel, generator_config

VOCAB = 60
ALWAYS_SAMPLED = 17  # the generator is rigged to sample this token at every masked position


def tiny_electra(objective: ElectraObjectiveConfig | None = None, seed: int = 0) -> ElectraPreTrainingModel:
    torch.manual_seed(seed)
    config = preset_config(
        "tiny", vocab_size=VOCAB, hidden_size=32, num_attention_heads=2, intermediate_size=64, max_position_embeddings=32
    )
    return ElectraPreTrainingModel(config, generator_config(config, 0.5), objective)


def rig_generator(model: ElectraPreTrainingModel, token: int = ALWAYS_SAMPLED) -> None:
    """Make the generator's softmax put all its mass on one token, so sampling is deterministic."""
    with torch.no_grad():
        model.generator_lm_head.bias.zero_()
        model.generator_lm_head.bias[token] = 1e4


def masked_batch() -> dict[str, torch.Tensor]:
    """Two rows (the second padded after 6 tokens); masked positions whose originals include ALWAYS_SAMPLED."""
    original = torch.tensor([[2, 10, ALWAYS_SAMPLED, 11, 12, 13, ALWAYS_SAMPLED, 14, 3], [2, 20, 21, ALWAYS_SAMPLED, 22, 3, 0, 0, 0]])
    attention_mask = (original != 0).long()
    masked_positions = torch.zeros_like(original, dtype=torch.bool)
    masked_positions[0, [1, 2, 6]] = True  # two of these originals equal the token the generator will sample
    masked_positions[1, [2, 3]] = True
    input_ids = torch.where(masked_positions, torch.full_like(original, 4), original)  # 4 = [MASK]
    mlm_labels = torch.where(masked_positions, original, torch.full_like(original, IGNORE_LABEL))
    return {
        "input_ids": input_ids,
        "token_type_ids": torch.zeros_like(original),
        "attention_mask": attention_mask,
        "mlm_labels": mlm_labels,
    }


def test_replaced_labels_count_a_sample_equal_to_the_original_as_original():
    model = tiny_electra().eval()
    rig_generator(model)
    batch = masked_batch()
    output = model(**batch)

    masked = batch["mlm_labels"] != IGNORE_LABEL
    assert (output.corrupted_ids[masked] == ALWAYS_SAMPLED).all()
    assert torch.equal(output.corrupted_ids[~masked], batch["input_ids"][~masked])
    real = batch["attention_mask"].bool()
    expected = (masked & (batch["mlm_labels"] != ALWAYS_SAMPLED))[real]
    assert torch.equal(output.replaced, expected)
    # Row 0 masks 10, 17, 17: only the first is replaced; row 1 masks 21, 17: only 21 is.
    assert int(output.replaced.sum()) == 2 and output.replaced.numel() == int(real.sum())


@torch.no_grad()
def test_padding_gets_no_discriminator_loss():
    model = tiny_electra().eval()
    rig_generator(model)
    batch = masked_batch()
    together = model(**batch)
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    per_row_sum = 0.0
    for row, length in enumerate(lengths):
        alone = model(**{key: value[row : row + 1, :length] for key, value in batch.items()})
        per_row_sum += float(alone.discriminator_loss) * length
    # The padded batch's loss is the mean over real tokens only: padding adds no term and no count.
    assert float(together.discriminator_loss) == pytest.approx(per_row_sum / sum(lengths), rel=1e-5)
    garbage = dict(batch, input_ids=batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 33))
    assert float(model(**garbage).discriminator_loss) == pytest.approx(float(together.discriminator_loss), rel=1e-6)


def test_embeddings_stay_shared_after_an_optimizer_step_and_a_reload():
    model = tiny_electra()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(**masked_batch()).loss.backward()
    embeddings = model.electra.embeddings
    assert embeddings.word_embeddings.weight.grad is not None
    optimizer.step()

    # One tensor per embedding in the state dict: nothing for a second copy to drift into.
    assert [name for name in model.state_dict() if "word_embeddings" in name] == ["electra.embeddings.word_embeddings.weight"]
    assert not any(name.startswith("generator.embeddings.") for name in model.state_dict())
    assert model.generator_lm_head._word_embeddings[0].weight is embeddings.word_embeddings.weight
    model.eval()
    batch = masked_batch()
    before = model.generator_dense_logits(batch["input_ids"], attention_mask=batch["attention_mask"])
    with torch.no_grad():  # the generator must see a change made to the discriminator's table and LayerNorm
        embeddings.position_embeddings.weight.add_(0.5)
        embeddings.LayerNorm.bias.add_(0.5)
    after = model.generator_dense_logits(batch["input_ids"], attention_mask=batch["attention_mask"])
    assert not torch.allclose(before, after)

    reloaded = tiny_electra(seed=1)
    reloaded.load_state_dict(model.state_dict())
    assert reloaded.generator_lm_head._word_embeddings[0].weight is reloaded.electra.embeddings.word_embeddings.weight
    torch.testing.assert_close(reloaded.eval().generator_dense_logits(batch["input_ids"], attention_mask=batch["attention_mask"]), after)


def test_generator_learns_from_its_own_loss_only():
    # The replacements are sampled without gradient: the discriminator's loss alone leaves the generator untouched.
    model = tiny_electra(ElectraObjectiveConfig(generator_weight=0.0))
    model(**masked_batch()).loss.backward()
    generator_grads = [p.grad for n, p in model.named_parameters() if n.startswith(("generator.", "generator_predictions."))]
    assert all(grad is None or not grad.any() for grad in generator_grads)
    assert model.electra.encoder.layer[0].output.dense.weight.grad.abs().sum() > 0

    model = tiny_electra(ElectraObjectiveConfig(discriminator_weight=0.0))
    model(**masked_batch()).loss.backward()
    assert model.generator.encoder.layer[0].output.dense.weight.grad.abs().sum() > 0
    assert model.electra.embeddings.word_embeddings.weight.grad.abs().sum() > 0  # the shared table learns from the generator too


def test_generator_is_a_narrower_model_of_the_same_depth():
    mini = preset_config("mini", vocab_size=300)
    generator = generator_config(mini, 0.25)
    assert (generator.hidden_size, generator.num_attention_heads, generator.intermediate_size) == (64, 1, 256)
    assert generator.num_hidden_layers == mini.num_hidden_layers and generator.vocab_size == mini.vocab_size
    base = generator_config(preset_config("base"), 1 / 3)
    assert (base.hidden_size, base.num_attention_heads) == (256, 4)
    model = ElectraPreTrainingModel(mini, generator)
    assert model.generator.embeddings_project.in_features == 256 and model.generator.embeddings_project.out_features == 64


@pytest.mark.parametrize(
    "settings, flag",
    [
        ({"generator_size": 0.0}, "--generator-size"),
        ({"generator_size": 1.5}, "--generator-size"),
        ({"sampling_temperature": 0.0}, "--sampling-temperature"),
        ({"discriminator_weight": -1.0}, "--discriminator-weight"),
        ({"discriminator_weight": 0.0, "generator_weight": 0.0}, "both 0"),
    ],
)
def test_bad_objective_settings_are_named(settings, flag):
    with pytest.raises(PrefineError, match=flag):
        ElectraObjectiveConfig(**settings)


def test_replacements_are_drawn_from_the_tempered_softmax():
    from prefine.model.electra import sample_replacements

    log_probs = torch.log_softmax(torch.tensor([[0.0, 1.0, 2.0, -30.0]]), dim=-1).expand(40_000, 4)
    for temperature in (1.0, 0.5):
        draws = sample_replacements(log_probs, temperature, torch.Generator().manual_seed(0))
        frequencies = torch.bincount(draws, minlength=4).double() / len(draws)
        expected = torch.softmax(log_probs[0].double() / temperature, dim=-1)
        torch.testing.assert_close(frequencies, expected, atol=0.01, rtol=0)
        assert frequencies[3] == 0  # a token of (nearly) zero probability is never drawn


def test_frequency_bias_starts_the_generator_at_word_frequencies_and_the_discriminator_at_the_replaced_prior():
    import math

    counts = torch.zeros(VOCAB, dtype=torch.float64)
    counts[5:] = (1000 / torch.arange(1, VOCAB - 4, dtype=torch.float64)).round()
    model = tiny_electra()
    model.start_from_token_frequencies(counts, mlm_probability=0.15)
    smoothed = (counts + 1) / (counts.sum() + VOCAB)
    torch.testing.assert_close(model.generator_lm_head.bias, smoothed.log().float())
    # A masked position is replaced unless the frequency-only generator draws the original back.
    replaced = 0.15 * (1 - float((smoothed**2).sum()))
    assert float(model.discriminator_predictions.dense_prediction.bias.detach()) == pytest.approx(
        math.log(replaced / (1 - replaced)), rel=1e-5
    )
    batch = masked_batch()
    with torch.no_grad():
        probabilities = torch.sigmoid(model.discriminator_dense_logits(batch["input_ids"], attention_mask=batch["attention_mask"]))
    assert abs(float(probabilities[batch["attention_mask"].bool()].mean()) - replaced) < 0.05  # the untrained model says the prior


def test_without_the_generator_frequency_bias_the_generator_starts_uniform_and_the_prior_follows():
    import math

    counts = torch.zeros(VOCAB, dtype=torch.float64)
    counts[5:] = (1000 / torch.arange(1, VOCAB - 4, dtype=torch.float64)).round()
    model = tiny_electra(ElectraObjectiveConfig(generator_frequency_bias=False))
    model.start_from_token_frequencies(counts, mlm_probability=0.15)
    assert torch.count_nonzero(model.generator_lm_head.bias) == 0
    # A near-uniform generator draws the original back one time in VOCAB.
    replaced = 0.15 * (1 - 1 / VOCAB)
    assert float(model.discriminator_predictions.dense_prediction.bias.detach()) == pytest.approx(
        math.log(replaced / (1 - replaced)), rel=1e-5
    )
    batch = masked_batch()
    with torch.no_grad():
        probabilities = torch.sigmoid(model.discriminator_dense_logits(batch["input_ids"], attention_mask=batch["attention_mask"]))
        generator_probabilities = torch.softmax(
            model.generator_dense_logits(batch["input_ids"], attention_mask=batch["attention_mask"]), dim=-1
        )
    assert abs(float(probabilities[batch["attention_mask"].bool()].mean()) - replaced) < 0.05
    assert float(generator_probabilities.max()) < 5 / VOCAB  # no word is favoured yet
