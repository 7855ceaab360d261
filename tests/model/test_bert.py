"""The BERT model: Hugging Face names, sparse MLM equals dense, padding invariance, presets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prefine.errors import PrefineError
from prefine.model import (
    IGNORE_LABEL,
    BertConfig,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertModel,
    count_parameters,
    preset_config,
)
from prefine.model.bert import apply_mimetic_init


def tiny_config(**overrides) -> BertConfig:
    values = dict(
        vocab_size=97,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertConfig(**{**values, **overrides})


def random_batch(batch: int = 3, length: int = 12, vocab: int = 97, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab, (batch, length), generator=generator)
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, length // 2 :] = 1
    return input_ids, token_type_ids


def test_parameter_names_follow_hugging_face():
    names = set(BertForPreTraining(tiny_config()).state_dict())
    expected = {
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.1.attention.self.query.weight",
        "bert.encoder.layer.1.attention.output.LayerNorm.bias",
        "bert.encoder.layer.0.intermediate.dense.weight",
        "bert.encoder.layer.0.output.dense.bias",
        "bert.pooler.dense.weight",
        "cls.predictions.bias",
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.seq_relationship.weight",
    }
    assert expected <= names
    # The decoder is tied to the word embeddings, so it is not a second copy in the state dict.
    assert not any("decoder" in name for name in names)


def test_mlm_head_is_tied_to_word_embeddings():
    model = BertForPreTraining(tiny_config())
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[7].fill_(3.0)
    hidden = torch.randn(2, 32)
    expected = model.cls.predictions.transform(hidden) @ model.bert.embeddings.word_embeddings.weight.T + model.cls.predictions.bias
    assert torch.allclose(model.cls.predictions(hidden), expected)


def test_untied_mlm_head_scores_with_its_own_matrix():
    model = BertForPreTraining(tiny_config(tie_word_embeddings=False))
    assert "cls.predictions.decoder.weight" in model.state_dict()
    decoder, table = model.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight
    assert decoder.data_ptr() != table.data_ptr()
    hidden = torch.randn(2, 32)
    expected = model.cls.predictions.transform(hidden) @ decoder.T + model.cls.predictions.bias
    assert torch.allclose(model.cls.predictions(hidden), expected)


@pytest.mark.parametrize("tied", [True, False])
def test_only_a_tied_head_moves_the_embeddings_of_words_never_read(tied):
    """The mechanism behind untying (model/heads.py): the softmax gradient reaches every vocabulary row."""
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_config(tie_word_embeddings=tied))
    input_ids, token_type_ids = random_batch(vocab=50)  # ids 5..49: rows 50..96 are never read
    labels = torch.full_like(input_ids, -100)
    labels[:, 3] = input_ids[:, 3]
    model(input_ids, token_type_ids, torch.ones_like(input_ids), labels).mlm_loss.backward()
    unread_rows = model.bert.embeddings.word_embeddings.weight.grad[50:]
    assert bool((unread_rows != 0).any()) is tied


def test_sparse_mlm_loss_equals_dense_loss():
    torch.manual_seed(0)
    model = BertForPreTraining(tiny_config()).eval()
    input_ids, token_type_ids = random_batch()
    labels = torch.full_like(input_ids, IGNORE_LABEL)
    labels[0, 2], labels[1, 5], labels[1, 6], labels[2, 11] = 9, 10, 11, 12
    output = model(input_ids, token_type_ids, torch.ones_like(input_ids), mlm_labels=labels)
    dense_logits = model.dense_prediction_logits(input_ids, token_type_ids, torch.ones_like(input_ids))
    dense_loss = F.cross_entropy(dense_logits.reshape(-1, 97), labels.reshape(-1), ignore_index=IGNORE_LABEL)
    assert output.mlm_logits.shape == (4, 97)
    assert torch.allclose(output.mlm_loss, dense_loss, atol=1e-6)


def test_batch_without_masked_tokens_or_pairs_gives_zero_loss_not_nan():
    model = BertForPreTraining(tiny_config())
    input_ids, token_type_ids = random_batch()
    output = model(input_ids, token_type_ids, None, torch.full_like(input_ids, IGNORE_LABEL), torch.full((3,), -1))
    assert output.loss.item() == 0.0
    # The zero loss stays connected to every parameter (DDP needs every gradient), and its gradients are zero.
    output.loss.backward()
    missing = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert not missing
    assert all(float(parameter.grad.abs().max()) == 0.0 for parameter in model.parameters())


def test_a_real_loss_reaches_every_parameter():
    model = BertForPreTraining(tiny_config())
    input_ids, token_type_ids = random_batch()
    labels = torch.full_like(input_ids, IGNORE_LABEL)
    labels[:, 3] = input_ids[:, 3]
    model(input_ids, token_type_ids, None, labels, torch.tensor([0, 1, 0])).loss.backward()
    without_gradient = [
        name for name, parameter in model.named_parameters() if parameter.grad is None or float(parameter.grad.abs().max()) == 0.0
    ]
    assert without_gradient == []


def test_padding_does_not_change_outputs():
    torch.manual_seed(1)
    model = BertForPreTraining(tiny_config()).eval()
    input_ids, token_type_ids = random_batch(batch=1, length=10)
    padded_ids = torch.cat([input_ids, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    padded_types = torch.cat([token_type_ids, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 10, dtype=torch.long), torch.zeros(1, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        plain = model.bert(input_ids, token_type_ids, torch.ones_like(input_ids))
        padded = model.bert(padded_ids, padded_types, mask)
        plain_nsp = model(input_ids, token_type_ids, torch.ones_like(input_ids)).nsp_logits
        padded_nsp = model(padded_ids, padded_types, mask).nsp_logits
    assert torch.allclose(plain, padded[:, :10], atol=1e-5)
    assert torch.allclose(plain_nsp, padded_nsp, atol=1e-5)


def test_task_heads_shapes_and_losses():
    input_ids, token_type_ids = random_batch()
    mask = torch.ones_like(input_ids)
    mask[0, 8:] = 0
    labels = torch.tensor([0, 2, 1])
    classifier = BertForSequenceClassification(tiny_config(), num_labels=3)
    output = classifier(input_ids, token_type_ids, mask, labels=labels)
    assert output.logits.shape == (3, 3)
    assert torch.allclose(output.loss, F.cross_entropy(output.logits, labels), atol=1e-6)

    regressor = BertForSequenceClassification(tiny_config(), num_labels=1)
    targets = torch.tensor([0.5, 1.0, 2.0])
    regression = regressor(input_ids, token_type_ids, mask, labels=targets)
    assert regression.logits.shape == (3, 1)
    assert torch.allclose(regression.loss, F.mse_loss(regression.logits[:, 0], targets), atol=1e-6)

    starts, ends = torch.tensor([1, 2, 3]), torch.tensor([2, 2, 4])
    span = BertForQuestionAnswering(tiny_config())(input_ids, token_type_ids, mask, starts, ends)
    assert span.start_logits.shape == (3, 12)
    expected = (F.cross_entropy(span.start_logits, starts) + F.cross_entropy(span.end_logits, ends)) / 2
    assert torch.allclose(span.loss, expected, atol=1e-6)
    # Padding can never be an answer boundary.
    assert span.start_logits[0, 8:].max() < -1e30
    assert "qa_outputs.weight" in BertForQuestionAnswering(tiny_config()).state_dict()


def test_presets_have_the_published_sizes():
    assert count_parameters(BertForPreTraining(preset_config("tiny", vocab_size=30522))) == pytest.approx(4.4e6, rel=0.05)
    assert count_parameters(BertForPreTraining(preset_config("mini", vocab_size=30522))) == pytest.approx(11.2e6, rel=0.05)
    assert preset_config("base").num_hidden_layers == 12 and preset_config("large").hidden_size == 1024
    with pytest.raises(PrefineError, match="unknown preset"):
        preset_config("gigantic")
    with pytest.raises(PrefineError, match="not divisible"):
        BertConfig(hidden_size=30, num_attention_heads=4)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("num_hidden_layers", 0, "num_hidden_layers 0 must be at least 1"),
        ("num_attention_heads", 0, "num_attention_heads 0 must be at least 1"),  # before the divisibility check divides by it
        ("intermediate_size", -4, "intermediate_size -4 must be at least 1"),
        ("attention_probs_dropout_prob", -0.1, "attention_probs_dropout_prob -0.1 must be at least 0 and below 1"),
        ("hidden_dropout_prob", 1.0, "hidden_dropout_prob 1.0 must be at least 0 and below 1"),
    ],
)
def test_a_shape_no_network_can_have_is_refused_by_name(field, value, message):
    with pytest.raises(PrefineError, match=message):
        BertConfig(**{field: value})
    BertConfig(**{field: {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}.get(field, 1)})  # the edge that is allowed


def test_causal_attention_ignores_future_tokens():
    torch.manual_seed(2)
    model = BertForPreTraining(tiny_config()).eval()
    input_ids, token_type_ids = random_batch(batch=1, length=8)
    changed = input_ids.clone()
    changed[0, 6:] = 5
    with torch.no_grad():
        first = model.bert(input_ids, token_type_ids, causal=True)
        second = model.bert(changed, token_type_ids, causal=True)
    assert torch.allclose(first[:, :6], second[:, :6], atol=1e-6)
    assert not torch.allclose(first[:, 6:], second[:, 6:])


def test_first_token_only_equals_the_full_encoder_at_cls():
    torch.manual_seed(3)
    model = BertForSequenceClassification(tiny_config(), num_labels=3).eval()
    input_ids, token_type_ids = random_batch(batch=4, length=10)
    for mask in (torch.ones_like(input_ids), torch.tensor([[1] * 10, [1] * 6 + [0] * 4, [1] * 3 + [0] * 7, [1] * 9 + [0]])):
        with torch.no_grad():
            full = model.bert(input_ids, token_type_ids, mask)[:, 0]
            first = model.bert(input_ids, token_type_ids, mask, first_token_only=True)
            logits = model(input_ids, token_type_ids, mask).logits
        assert torch.allclose(full, first, atol=1e-5)
        assert torch.allclose(logits, model.classifier(model.bert.pooler.pool(full)), atol=1e-5)


def test_group_boundaries_trade_grid_area_against_calls():
    from prefine.model.bert import ATTENTION_CALL_COST, _group_boundaries

    assert ATTENTION_CALL_COST == 8192
    # One grid: 4 x 100^2 + 8192 = 48192; two: 2 x 100^2 + 2 x 10^2 + 2 x 8192 = 36584.
    assert _group_boundaries([100, 100, 10, 10]) == [0, 2, 4]
    # Close widths are not worth a second call: 4 x 60^2 + 8192 < 2 x 60^2 + 2 x 50^2 + 2 x 8192.
    assert _group_boundaries([60, 60, 50, 50]) == [0, 4]
    assert _group_boundaries([7]) == [0, 1]


def varied_length_batch(rows: int = 12, length: int = 96, seed: int = 4):
    generator = torch.Generator().manual_seed(seed)
    input_ids, token_type_ids = random_batch(batch=rows, length=length, seed=seed)
    # Rows not in length order, so groups (longest first) really have to be put back in order.
    widths = torch.tensor([9, length, 2, 40, 70, 17, 90, 5, 33, 8, 20, 3][:rows])
    mask = (torch.arange(length)[None, :] < widths[:, None]).long()
    # Holes inside rows (any mask a caller passes must work, not only right padding).
    holes = torch.rand(rows, length, generator=generator) < 0.1
    holes[:, 0] = False
    return input_ids, token_type_ids, mask * (~holes).long()


@pytest.mark.parametrize("causal", [False, True])
def test_grouped_attention_equals_one_padded_grid(monkeypatch, causal):
    import prefine.model.bert as bert_module

    torch.manual_seed(5)
    model = BertForPreTraining(tiny_config(max_position_embeddings=128))
    input_ids, token_type_ids, mask = varied_length_batch()
    layout = bert_module.AttentionLayout.from_mask(mask, tuple(mask.shape), torch.float32, causal)
    assert layout.groups is not None and len(layout.groups) >= 3, "varied lengths are split into groups"
    assert max(group.length for group in layout.groups[1:]) < mask.shape[1]

    # A random readout: a sum of squares would be near-constant after the final LayerNorm.
    readout = torch.randn(*mask.shape, 32, generator=torch.Generator().manual_seed(8))

    def outputs_and_gradients():
        model.zero_grad()
        hidden = model.bert(input_ids, token_type_ids, mask, causal=causal)
        (hidden * readout).sum().backward()
        return hidden, {name: parameter.grad.clone() for name, parameter in model.named_parameters() if parameter.grad is not None}

    grouped, grouped_grads = outputs_and_gradients()
    monkeypatch.setattr(bert_module, "ATTENTION_CALL_COST", 1e12)  # forces one grid for the whole batch
    assert bert_module.AttentionLayout.from_mask(mask, tuple(mask.shape), torch.float32, causal).groups is None
    single, single_grads = outputs_and_gradients()
    assert torch.allclose(grouped, single, atol=1e-5)
    assert grouped_grads.keys() == single_grads.keys()
    assert all(torch.allclose(grouped_grads[name], single_grads[name], atol=1e-5) for name in grouped_grads)


def test_grouped_first_token_path_equals_the_full_encoder():
    torch.manual_seed(6)
    model = BertForSequenceClassification(tiny_config(max_position_embeddings=128), num_labels=2).eval()
    input_ids, token_type_ids, mask = varied_length_batch(seed=7)
    with torch.no_grad():
        full = model.bert(input_ids, token_type_ids, mask)[:, 0]
        first = model.bert(input_ids, token_type_ids, mask, first_token_only=True)
    assert torch.allclose(full, first, atol=1e-5)


TRAINING_STEPS_SCRIPT = """
import json, torch
from prefine.model import BertConfig, BertForPreTraining
torch.set_num_threads(2)
torch.manual_seed(0)
config = BertConfig(
    vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, max_position_embeddings=64
)
model = BertForPreTraining(config).train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
generator = torch.Generator().manual_seed(1)
losses, gradients = [], []
for step in range(3):
    lengths = torch.randint(8, 48, (6,), generator=generator)
    mask = (torch.arange(48)[None, :] < lengths[:, None]).long()
    ids = torch.randint(5, 300, (6, 48), generator=generator) * mask
    labels = torch.where((torch.rand(6, 48, generator=generator) < 0.3) & (mask == 1), ids, torch.full_like(ids, -100))
    optimizer.zero_grad()
    loss = model(ids, None, mask, labels, torch.randint(0, 2, (6,), generator=generator)).loss
    loss.backward()
    gradients.append(sum(float(p.grad.double().abs().sum()) for p in model.parameters() if p.grad is not None).hex())
    optimizer.step()
    losses.append(loss.item().hex())
print(json.dumps({"losses": losses, "gradients": gradients}))
"""


def test_openmp_wait_policy_changes_no_result():
    """The first-steps fix (OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spinning)
    keeps outputs equal: losses and gradients of a few training steps are bit-identical."""
    import json
    import os
    import subprocess
    import sys

    results = {}
    for policy in (None, "PASSIVE"):
        environment = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        if policy:
            environment["OMP_WAIT_POLICY"] = policy
        finished = subprocess.run(
            [sys.executable, "-c", TRAINING_STEPS_SCRIPT], env=environment, capture_output=True, text=True, check=True
        )
        results[policy] = json.loads(finished.stdout.strip().splitlines()[-1])
    assert len(set(results[None]["losses"])) == 3, "training moved"
    assert results["PASSIVE"] == results[None]


def zipf_counts(vocab: int = 97) -> torch.Tensor:
    """Word counts steeper than a real vocabulary's (count ~ 1 / rank^2), none for the special ids."""
    counts = (100_000 / torch.arange(1, vocab + 1, dtype=torch.float64) ** 2).round()
    counts[:5] = 0
    return counts


def test_frequency_bias_makes_the_untrained_model_predict_word_frequencies():
    counts = zipf_counts()
    smoothed = (counts + 1) / (counts.sum() + len(counts))
    entropy = float(-(smoothed * smoothed.log()).sum())
    # Targets drawn from the same frequencies: a model that knows them scores the entropy.
    targets = torch.multinomial(smoothed.float(), 3 * 12, replacement=True, generator=torch.Generator().manual_seed(1)).view(3, 12)
    input_ids, token_type_ids = random_batch()
    losses = {}
    for start_from_frequencies in (False, True):
        torch.manual_seed(0)
        model = BertForPreTraining(tiny_config(tie_word_embeddings=False))
        if start_from_frequencies:
            model.start_from_token_frequencies(counts, mlm_probability=0.15)
        with torch.no_grad():
            losses[start_from_frequencies] = float(model(input_ids, token_type_ids, mlm_labels=targets).mlm_loss)
    torch.testing.assert_close(model.cls.predictions.bias, smoothed.log().float())
    assert abs(losses[False] - torch.log(torch.tensor(97.0)).item()) < 0.3  # zero bias: about uniform
    assert abs(losses[True] - entropy) < 0.6 and losses[True] < losses[False] - 0.5


def test_an_embedding_as_wide_as_the_blocks_means_no_projection():
    # ELECTRA-Base's config.json spells "no projection" as embedding_size == hidden_size; it must not
    # look like ELECTRA-Small's layout to the checks that refuse a projection.
    same = tiny_config(embedding_size=32)
    assert same.embedding_size == 0 and BertModel(same).embeddings_project is None
    narrow = tiny_config(embedding_size=16)
    assert narrow.embedding_size == 16 and BertModel(narrow).embeddings_project.in_features == 16
    with pytest.raises(PrefineError, match="embedding_size -1"):
        BertConfig(embedding_size=-1)


def first_layer_attention(model: BertModel, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
    """Layer 0's attention probabilities, [batch, heads, query, key], recomputed from its weights."""
    attention = model.encoder.layer[0].attention.self
    hidden = model.embeddings(input_ids, token_type_ids)
    batch, length, _ = hidden.shape

    def heads(linear):
        return linear(hidden).view(batch, length, attention.num_heads, attention.head_dim).transpose(1, 2)

    scores = heads(attention.query) @ heads(attention.key).transpose(-1, -2) / attention.head_dim**0.5
    return scores.softmax(-1)


@pytest.mark.parametrize("hidden, heads", [(64, 1), (256, 4)])
def test_mimetic_init_starts_heads_on_the_token_itself_instead_of_uniform(hidden, heads):
    config = tiny_config(hidden_size=hidden, num_attention_heads=heads, intermediate_size=2 * hidden, vocab_size=2000)
    input_ids, token_type_ids = random_batch(batch=4, length=48, vocab=2000)
    self_attention = {}
    for mimetic in (False, True):
        torch.manual_seed(0)
        model = BertModel(config, add_pooling_layer=False)
        if mimetic:
            apply_mimetic_init(model, config.initializer_range, torch.Generator().manual_seed(0))
        with torch.no_grad():
            probabilities = first_layer_attention(model, input_ids, token_type_ids)
        self_attention[mimetic] = float(probabilities.diagonal(dim1=-2, dim2=-1).mean())
    # BERT's init attends about uniformly (1/48 of the weight on each key, the token itself too);
    # the mimetic init starts well off that saddle, on the token itself.
    assert self_attention[False] < 1.5 / 48
    assert self_attention[True] > 5 / 48


def test_mimetic_init_sets_sinusoidal_positions_at_the_word_rows_scale():
    config = tiny_config(hidden_size=64, num_attention_heads=1, max_position_embeddings=512)
    torch.manual_seed(0)
    model = BertForPreTraining(config)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    apply_mimetic_init(model, config.initializer_range, torch.Generator().manual_seed(0))
    table = model.bert.embeddings.position_embeddings.weight.detach()
    assert abs(float(table.std()) - config.initializer_range) < 1e-4
    normalised = F.normalize(table, dim=-1)
    similarity = [float((normalised[:-offset] * normalised[offset:]).sum(-1).mean()) for offset in (1, 4, 16)]
    assert similarity[0] > 0.8 and similarity[0] > similarity[1] > similarity[2]

    # One linear map moves every position one step on (a rotation per frequency), so a head can
    # learn "read the next token" once; random rows need a map fitted row by row.
    def one_step_residual(rows: torch.Tensor) -> float:
        step = torch.linalg.lstsq(rows[:-1].double(), rows[1:].double()).solution
        return float((rows[:-1].double() @ step - rows[1:].double()).norm() / rows[1:].double().norm())

    assert one_step_residual(table) < 1e-6
    assert one_step_residual(before["bert.embeddings.position_embeddings.weight"]) > 0.3
    # Only the position table and the query / key weights change; the word rows, values and
    # every other weight keep BERT's init.
    changed = {name for name, value in model.state_dict().items() if not torch.equal(value, before[name])}
    assert changed == {"bert.embeddings.position_embeddings.weight"} | {
        f"bert.encoder.layer.{index}.attention.self.{part}.weight" for index in range(config.num_hidden_layers) for part in ("query", "key")
    }


def test_mimetic_init_gives_each_head_the_best_low_rank_query_key_product():
    config = tiny_config(hidden_size=64, num_attention_heads=2, intermediate_size=128)
    model = BertModel(config, add_pooling_layer=False)
    apply_mimetic_init(model, config.initializer_range, torch.Generator().manual_seed(3))
    # Redraw the targets in the order the init draws them: layer by layer, head by head.
    generator = torch.Generator().manual_seed(3)
    for block in model.encoder.layer:
        attention = block.attention.self
        for head in range(attention.num_heads):
            target = 0.5 * torch.randn(64, 64, generator=generator, dtype=torch.float64) / 8 + 0.5 * torch.eye(64, dtype=torch.float64)
            left, singular, right = torch.linalg.svd(target)
            keep = attention.head_dim
            best = (left[:, :keep] * singular[:keep]) @ right[:keep]
            rows = slice(head * keep, (head + 1) * keep)
            product = attention.query.weight[rows].double().T @ attention.key.weight[rows].double()
            assert torch.allclose(product, best, atol=1e-5)
            # Half the rank is kept, so the product is not the target itself.
            assert (product - target).norm() > 0.1 * target.norm()
