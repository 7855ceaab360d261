"""ELECTRA pre-training (Clark et al. 2020): a small MLM generator and a replaced-token discriminator.

The generator fills the masked positions of a batch with tokens sampled from its own softmax;
the discriminator then reads the corrupted text and decides, for every real token, whether the
generator replaced it. The discriminator learns from every position instead of the ~15% MLM
predicts, which is why ELECTRA gets more out of a small compute budget; it is the network that
fine-tuning starts from. The loss is `generator_weight * MLM + discriminator_weight * BCE`
(ELECTRA's 1 and 50), the sampling carries no gradient, and a sampled token that happens to
equal the original counts as "original". A new model's output biases start from the corpus
(`start_from_token_frequencies`: word frequencies for the generator unless
`generator_frequency_bias` is off, the replaced-token prior for the discriminator), which keeps
the discriminator from collapsing its states to learn the prior.

The two networks share the token, position and segment embeddings and the embedding LayerNorm
(google-research/electra's default): the generator holds a reference to the discriminator's
embedding module, not a copy, so both train one set of tensors and the checkpoint stores it once.
The generator is as deep as the discriminator and `generator_size` times as wide; a linear
`embeddings_project` maps the shared embeddings to its width, and its output head maps back to
the embedding width to score the vocabulary with the (tied) word-embedding table.

Parameter names follow transformers' ELECTRA classes, so the export is a rename-free split:
`electra.*` and `discriminator_predictions.*` are exactly `ElectraForPreTraining`'s names, and
`generator.*`, `generator_predictions.*` and `generator_lm_head.bias` become
`ElectraForMaskedLM`'s (with `generator.` renamed to `electra.`).

The discriminator's encoder *is* a BERT encoder (`BertModel` without a pooler). A new model keeps
embedding_size == hidden_size; one imported with narrower embeddings (Google's ELECTRA-Small,
128 for 256) keeps its `embeddings_project`, which `BertModel` then has too, and the generator
reads the same narrow embeddings. Every fine-tuning task takes the encoder as is; the BERT pooler and task head start fresh (ELECTRA has no
pooler, and transformers' ElectraForSequenceClassification reads [CLS] through its own
dense-gelu-dense head instead of BERT's tanh pooler, so there is nothing to carry over).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prefine.config import option
from prefine.errors import PrefineError
from prefine.labels import IGNORE_LABEL
from prefine.model.bert import AttentionLayout, BertEncoder, BertModel, activation, init_bert_weights
from prefine.model.config import BertConfig, config_from_dict
from prefine.pretraining_data.frequencies import log_frequencies

# Below this width a generator head of 64 dimensions would be wider than the generator itself.
GENERATOR_HEAD_DIM = 64


@dataclass
class ElectraObjectiveConfig:
    """Settings of the ELECTRA objective (used with --objective electra)."""

    generator_size: float = option(
        0.25, "generator hidden size as a fraction of the discriminator's, same depth (ELECTRA: 1/4 for small models, 1/3 for base)"
    )
    discriminator_weight: float = option(50.0, "weight of the discriminator's replaced-token loss (ELECTRA: 50)")
    generator_weight: float = option(1.0, "weight of the generator's masked-LM loss (ELECTRA: 1)")
    sampling_temperature: float = option(1.0, "temperature of the generator softmax that replacement tokens are sampled from")
    generator_frequency_bias: bool = option(
        True,
        "with --frequency-bias, also start the generator's vocabulary bias at the log word frequencies "
        "(off: it starts at zero, as in ELECTRA, so its first replacements are near-uniform draws from the vocabulary)",
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.generator_size <= 1.0:
            raise PrefineError(f"--generator-size {self.generator_size} must be in (0, 1] (a fraction of the discriminator's hidden size)")
        for name in ("discriminator_weight", "generator_weight"):
            if getattr(self, name) < 0:
                raise PrefineError(f"--{name.replace('_', '-')} {getattr(self, name)} must not be negative")
        if self.discriminator_weight == 0 and self.generator_weight == 0:
            raise PrefineError("--discriminator-weight and --generator-weight are both 0; nothing would be trained")
        if self.sampling_temperature <= 0:
            raise PrefineError(f"--sampling-temperature {self.sampling_temperature} must be positive")


def generator_config(discriminator: BertConfig, generator_size: float) -> BertConfig:
    """The generator's shape: same depth, vocabulary and positions; `generator_size` of the width.

    Heads of 64 dimensions (one head below 64), a feed-forward 4x the width, as google-research/
    electra derives its generators.
    """
    width = max(1, round(discriminator.hidden_size * generator_size))
    heads = max(1, width // GENERATOR_HEAD_DIM)
    width = max(heads, width - width % heads)
    # embedding_size 0: the generator reads the discriminator's embeddings, whatever their width.
    return dataclasses.replace(discriminator, hidden_size=width, num_attention_heads=heads, intermediate_size=4 * width, embedding_size=0)


class ElectraGenerator(nn.Module):
    """The generator's body: projection from the shared embeddings, then its own encoder blocks."""

    def __init__(self, config: BertConfig, embedding_size: int):
        super().__init__()
        self.config = config
        # transformers' ElectraModel has this layer only when the widths differ; so do we.
        self.embeddings_project = nn.Linear(embedding_size, config.hidden_size) if embedding_size != config.hidden_size else None
        self.encoder = BertEncoder(config)

    def forward(self, embedded: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """[B, L, E] shared embeddings -> [B, L, G] hidden states (zeros at padding)."""
        hidden = self.embeddings_project(embedded) if self.embeddings_project is not None else embedded
        layout = AttentionLayout.from_mask(attention_mask, embedded.shape[:2], hidden.dtype)
        return layout.pad(self.encoder(layout.unpad(hidden), layout))


class ElectraGeneratorPredictions(nn.Module):
    """Generator width -> embedding width: dense, GELU, LayerNorm (transformers fixes exact GELU here)."""

    def __init__(self, generator: BertConfig, embedding_size: int):
        super().__init__()
        self.dense = nn.Linear(generator.hidden_size, embedding_size)
        self.LayerNorm = nn.LayerNorm(embedding_size, eps=generator.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(hidden)))


class TiedVocabularyProjection(nn.Module):
    """Vocabulary logits with the word-embedding table as the matrix; only the bias is its own."""

    def __init__(self, word_embeddings: nn.Embedding):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(word_embeddings.num_embeddings))
        # A plain attribute, not a submodule: the table is owned (and saved) by the embeddings.
        self._word_embeddings = [word_embeddings]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self._word_embeddings[0].weight, self.bias)


class ElectraDiscriminatorPredictions(nn.Module):
    """One replaced-vs-original logit per token: dense, the model's activation, dense to 1."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.dense_prediction = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.dense_prediction(self.act(self.dense(hidden))).squeeze(-1)


@dataclass
class ElectraOutput:
    loss: torch.Tensor
    generator_loss: torch.Tensor
    discriminator_loss: torch.Tensor
    generator_logits: torch.Tensor  # [num_masked, vocab]: only the masked positions
    generator_targets: torch.Tensor  # [num_masked]
    discriminator_logits: torch.Tensor  # [num_real_tokens]: every non-padding position, row-major
    replaced: torch.Tensor  # bool [num_real_tokens]: the discriminator's labels
    corrupted_ids: torch.Tensor  # [B, L]: the discriminator's input


def sample_replacements(log_probs: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of `log_probs` [M, V], drawn from softmax(log_probs / temperature).

    Inverse-CDF sampling: one uniform draw per row against the cumulative probabilities. Gumbel-max
    needs a random number and two logarithms per vocabulary entry; with a 30k vocabulary that was
    a seventh of a tiny model's whole ELECTRA step on CPU. Uses `generator` when given
    (evaluation: the same draws every time), else the global RNG, whose state checkpoints carry,
    so a resumed run draws what the uninterrupted one drew.
    """
    scaled = log_probs.float() if temperature == 1.0 else log_probs.float() / temperature
    cumulative = (scaled - scaled.amax(-1, keepdim=True)).exp_().cumsum_(-1)
    draw = torch.rand((log_probs.shape[0], 1), generator=generator, device=log_probs.device) * cumulative[:, -1:]
    # right=True: the first entry whose cumulative mass exceeds the draw, never a zero-probability one.
    return torch.searchsorted(cumulative, draw, right=True).squeeze(-1).clamp_(max=log_probs.shape[-1] - 1)


class ElectraPreTrainingModel(nn.Module):
    """Generator and discriminator with shared embeddings, trained together (see the module docstring)."""

    def __init__(self, config: BertConfig, generator: BertConfig, objective: ElectraObjectiveConfig | None = None):
        super().__init__()
        if generator.num_hidden_layers != config.num_hidden_layers or generator.vocab_size != config.vocab_size:
            raise PrefineError("the ELECTRA generator must have the discriminator's depth and vocabulary")
        self.config = config
        self.generator_config = generator
        self.objective = objective or ElectraObjectiveConfig()
        self.electra = BertModel(config, add_pooling_layer=False)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(config)
        self.generator = ElectraGenerator(generator, config.embedding_width)
        self.generator_predictions = ElectraGeneratorPredictions(generator, config.embedding_width)
        self.generator_lm_head = TiedVocabularyProjection(self.electra.embeddings.word_embeddings)
        init_bert_weights(self, config.initializer_range)

    @property
    def shared_embeddings(self):
        return self.electra.embeddings

    def generator_hidden(self, input_ids, token_type_ids, attention_mask) -> torch.Tensor:
        return self.generator(self.shared_embeddings(input_ids, token_type_ids), attention_mask)

    def generator_vocabulary_logits(self, generator_hidden: torch.Tensor) -> torch.Tensor:
        return self.generator_lm_head(self.generator_predictions(generator_hidden))

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        sampling_generator: torch.Generator | None = None,
    ) -> ElectraOutput:
        """Masked input_ids [B, L] and mlm_labels (original ids at masked positions, IGNORE_LABEL elsewhere)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if mlm_labels is None:
            mlm_labels = torch.full_like(input_ids, IGNORE_LABEL)
        masked = (mlm_labels != IGNORE_LABEL).flatten()
        targets = mlm_labels.flatten()[masked]
        generator_hidden = self.generator_hidden(input_ids, token_type_ids, attention_mask)
        generator_logits = self.generator_vocabulary_logits(generator_hidden.flatten(0, 1)[masked])
        # One log-softmax serves both the loss and the sampling below.
        generator_log_probs = F.log_softmax(generator_logits.float(), dim=-1)
        generator_loss = F.nll_loss(generator_log_probs, targets, reduction="sum") / max(targets.numel(), 1)

        # The discriminator's input is discrete: no gradient can (or should) reach the generator through it.
        with torch.no_grad():
            sampled = sample_replacements(generator_log_probs.detach(), self.objective.sampling_temperature, sampling_generator)
            corrupted = input_ids.flatten().clone()
            corrupted[masked] = sampled.to(corrupted.dtype)
            corrupted = corrupted.view_as(input_ids)
            original = torch.where(mlm_labels != IGNORE_LABEL, mlm_labels, input_ids)
            real = attention_mask.flatten().bool()
            # Compared with the original, not with "was masked": a lucky sample is no replacement.
            replaced = (corrupted != original).flatten()[real]

        discriminator_hidden = self.electra(corrupted, token_type_ids, attention_mask)
        discriminator_logits = self.discriminator_predictions(discriminator_hidden.flatten(0, 1)[real]).float()
        # Padding never reaches the loss: only real positions were selected above.
        discriminator_loss = F.binary_cross_entropy_with_logits(discriminator_logits, replaced.float(), reduction="sum") / max(
            int(real.sum()), 1
        )
        loss = self.objective.generator_weight * generator_loss + self.objective.discriminator_weight * discriminator_loss
        return ElectraOutput(loss, generator_loss, discriminator_loss, generator_logits, targets, discriminator_logits, replaced, corrupted)

    @torch.no_grad()
    def start_from_token_frequencies(self, counts: torch.Tensor, mlm_probability: float) -> None:
        """Start both output layers at the answer a model without context would give.

        The generator's vocabulary bias becomes the log word frequencies (as for masked LM; left
        at zero, ELECTRA's own start, with `generator_frequency_bias` off), and the
        discriminator's bias the log-odds of a token being replaced: a masked position is
        replaced unless the sample equals the original, which a frequency-only generator draws
        with probability sum(p^2) and a uniform one with 1/V. Left at zero, the discriminator
        reaches that prior faster through its hidden states than through one slow bias, pushing
        every token's final state toward one shared direction (seen in an uncommitted probe),
        and in 15 minutes on SST-2's sentences the discriminator fine-tuned no better
        than chance (docs/electra.md, "Learning rate"). A uniform generator makes the first
        replacements easier to spot (rare words out of place) but fine-tuned worse after 15
        minutes on the built-in corpus (docs/electra.md), so it is not the default.
        """
        log_probability = log_frequencies(counts)
        probability = log_probability.double().exp()
        if self.objective.generator_frequency_bias:
            self.generator_lm_head.bias.copy_(log_probability)
            # Sample and original both follow the word frequencies.
            chance_of_original = float((probability**2).sum())
        else:
            # A fresh generator's logits are near zero: its samples are near-uniform.
            chance_of_original = 1.0 / probability.numel()
        replaced = min(max(mlm_probability * (1.0 - chance_of_original), 1e-4), 1 - 1e-4)
        self.discriminator_predictions.dense_prediction.bias.fill_(math.log(replaced / (1.0 - replaced)))

    def generator_dense_logits(self, input_ids, token_type_ids=None, attention_mask=None) -> torch.Tensor:
        """The generator's vocabulary logits at every position [B, L, V] (fill-mask and export tests)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return self.generator_vocabulary_logits(self.generator_hidden(input_ids, token_type_ids, attention_mask))

    def discriminator_dense_logits(self, input_ids, token_type_ids=None, attention_mask=None) -> torch.Tensor:
        """The discriminator's replaced-token logits at every position [B, L]."""
        return self.discriminator_predictions(self.electra(input_ids, token_type_ids, attention_mask))


# Where each part of the model lives in its state dict, for loads that may lack some parts.
DISCRIMINATOR_ENCODER_PREFIX = "electra."
DISCRIMINATOR_HEAD_PREFIX = "discriminator_predictions."
GENERATOR_PREFIXES = ("generator.", "generator_predictions.", "generator_lm_head.")


@dataclass
class ElectraWeights:
    """A saved ELECTRA pre-training state in prefine's names (see `ElectraPreTrainingModel`).

    The discriminator's encoder is always there; its head and the generator only when the source
    had them (an exported or Hugging Face discriminator comes without a generator).
    """

    config: BertConfig  # the discriminator
    generator_config: BertConfig | None
    state_dict: dict[str, torch.Tensor]

    def bert_encoder_state(self) -> dict[str, torch.Tensor]:
        """The discriminator's encoder under BERT's names (`bert.embeddings.*`, `bert.encoder.*`)."""
        return {
            "bert." + name[len(DISCRIMINATOR_ENCODER_PREFIX) :]: tensor
            for name, tensor in self.state_dict.items()
            if name.startswith(DISCRIMINATOR_ENCODER_PREFIX)
        }

    @property
    def has_generator(self) -> bool:
        return self.generator_config is not None and any(name.startswith(GENERATOR_PREFIXES) for name in self.state_dict)


def is_electra_checkpoint_config(config_json: dict) -> bool:
    return config_json.get("model_type") == "electra"


def electra_checkpoint_config(model: ElectraPreTrainingModel) -> dict:
    """The config.json of a prefine ELECTRA checkpoint: the discriminator's fields plus the generator's shape."""
    return {
        **dataclasses.asdict(model.config),
        "model_type": "electra",
        "architectures": ["ElectraPreTrainingModel"],
        "generator": dataclasses.asdict(model.generator_config),
        "objective": dataclasses.asdict(model.objective),
    }


def electra_weights_from_checkpoint(config_json: dict, state_dict: dict[str, torch.Tensor], source: str) -> ElectraWeights:
    """Read a prefine ELECTRA checkpoint's config.json and weights."""
    discriminator_fields = {key: value for key, value in config_json.items() if key not in ("model_type", "generator", "objective")}
    config = config_from_dict(discriminator_fields, source)
    generator_fields = config_json.get("generator")
    if not isinstance(generator_fields, dict):
        raise PrefineError(f"{source}: an ELECTRA checkpoint config needs its 'generator' shape; it was not written by prefine pretrain")
    return ElectraWeights(config, config_from_dict(generator_fields, source), state_dict)


def electra_state_from_bert(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A BERT encoder (`bert.*` or bare `embeddings.*`/`encoder.*`) as the discriminator's encoder; heads dropped."""
    converted = {}
    for name, tensor in state_dict.items():
        bare = name[len("bert.") :] if name.startswith("bert.") else name
        if bare.startswith(("embeddings.", "embeddings_project.", "encoder.")) and not bare.endswith(("position_ids", "token_type_ids")):
            converted[DISCRIMINATOR_ENCODER_PREFIX + bare] = tensor
    return converted


def load_electra_state(model: ElectraPreTrainingModel, state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Load what `state_dict` has into `model`: the discriminator's encoder must be complete; its head
    and the generator keep their fresh initialization when absent. Returns the parts left fresh."""
    ours = model.state_dict()
    parts = {
        "discriminator encoder": (DISCRIMINATOR_ENCODER_PREFIX,),
        "discriminator head": (DISCRIMINATOR_HEAD_PREFIX,),
        "generator": GENERATOR_PREFIXES,
    }
    merged = dict(ours)
    fresh = []
    for part, prefixes in parts.items():
        names = [name for name in ours if name.startswith(prefixes)]
        present = [name for name in names if name in state_dict]
        if not present and part != "discriminator encoder":
            fresh.append(part)
            continue
        missing = [name for name in names if name not in state_dict]
        if missing:
            raise PrefineError(f"the checkpoint lacks {missing[0]} of the ELECTRA {part}; it is incomplete or has another shape")
        for name in names:
            if state_dict[name].shape != ours[name].shape:
                raise PrefineError(
                    f"checkpoint weight {name} has shape {list(state_dict[name].shape)} but the model expects {list(ours[name].shape)}; "
                    "the checkpoint was made with other sizes"
                )
            merged[name] = state_dict[name].to(ours[name].dtype)
    model.load_state_dict(merged, strict=True)
    return fresh
