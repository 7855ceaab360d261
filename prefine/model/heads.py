"""Task heads on the BERT encoder: pre-training (MLM + NSP), sequence and token classification, span QA.

Each head keeps Hugging Face's attribute names (`cls.predictions.transform.dense`,
`classifier`, `qa_outputs`) so its weights export as `BertForPreTraining`,
`BertForSequenceClassification`, `BertForTokenClassification` or `BertForQuestionAnswering`
without reshaping.

The MLM head is *sparse*: it projects to the vocabulary only at the ~15% of positions that
are masked. With a 30k vocabulary the dense projection is a large share of BERT's compute
(field notes: 40% of mini's FLOPs), all of it wasted on positions whose loss is ignored.
`BertForPreTraining.start_from_token_frequencies` starts its bias at the corpus's log word
frequencies, so the encoder need not bend its states to learn them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from prefine.labels import IGNORE_LABEL, IGNORE_NSP
from prefine.model.bert import BertModel, BertPooler, activation, init_bert_weights
from prefine.model.config import BertConfig
from prefine.pretraining_data.frequencies import log_frequencies


def _mean_over_counted(summed: torch.Tensor, count: int) -> torch.Tensor:
    # A batch may hold no masked token or no NSP pair; summing and dividing by max(count, 1)
    # gives a zero loss whose graph still touches every parameter (DDP needs that) instead of NaN.
    return summed / max(count, 1)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden)))


class BertLMPredictionHead(nn.Module):
    """Vocabulary logits, projected with the word-embedding table (tied, BERT's way) or with `decoder`, a matrix of its own.

    Why untie: the softmax gradient reaches every vocabulary row at every step, and Adam scales
    even a tiny, consistent gradient up to a full-size step. Early in pre-training the hidden
    states still look alike, so every rare word's row is pushed the same way, step after step;
    tied, those rows *are* the input embeddings, and the rare words of a sentence come to enter
    the encoder as nearly one vector. Untied, an input embedding moves only when its token is
    read. docs/pretraining-defaults.md ("The MLM head: untied") has what tying cost fine-tuning.
    """

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding, tied: bool | None = None):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.tied = config.tie_word_embeddings if tied is None else tied
        if not self.tied:
            self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)  # transformers' name for the projection
        # A plain attribute, not a submodule: the tied table is owned (and saved) by the encoder.
        self._word_embeddings = [word_embeddings]

    @property
    def projection(self) -> torch.Tensor:
        """The [vocab, hidden] matrix the logits are scored with."""
        return self._word_embeddings[0].weight if self.tied else self.decoder.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), self.projection, self.bias)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, word_embeddings)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)


@dataclass
class PreTrainingOutput:
    loss: torch.Tensor
    mlm_loss: torch.Tensor
    nsp_loss: torch.Tensor
    mlm_logits: torch.Tensor  # [num_masked, vocab]: only the predicted positions
    mlm_targets: torch.Tensor  # [num_masked]
    nsp_logits: torch.Tensor  # [B, 2]
    nsp_labels: torch.Tensor | None


class BertForPreTraining(nn.Module):
    """BERT with the masked-LM and next-sentence heads of the original pre-training recipe."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=True)
        self.cls = BertPreTrainingHeads(config, self.bert.embeddings.word_embeddings)
        init_bert_weights(self, config.initializer_range)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        next_sentence_label: torch.Tensor | None = None,
    ) -> PreTrainingOutput:
        sequence_output = self.bert(input_ids, token_type_ids, attention_mask)
        nsp_logits = self.cls.seq_relationship(self.bert.required_pooler()(sequence_output))
        if mlm_labels is None:
            mlm_labels = torch.full_like(input_ids, IGNORE_LABEL)
        predicted = (mlm_labels != IGNORE_LABEL).flatten()
        mlm_targets = mlm_labels.flatten()[predicted]
        mlm_logits = self.cls.predictions(sequence_output.flatten(0, 1)[predicted])
        mlm_loss = _mean_over_counted(F.cross_entropy(mlm_logits.float(), mlm_targets, reduction="sum"), mlm_targets.numel())
        if next_sentence_label is None:
            nsp_loss = nsp_logits.sum() * 0.0
        else:
            counted = int((next_sentence_label != IGNORE_NSP).sum())
            nsp_loss = _mean_over_counted(
                F.cross_entropy(nsp_logits.float(), next_sentence_label, ignore_index=IGNORE_NSP, reduction="sum"), counted
            )
        return PreTrainingOutput(mlm_loss + nsp_loss, mlm_loss, nsp_loss, mlm_logits, mlm_targets, nsp_logits, next_sentence_label)

    def dense_prediction_logits(self, input_ids, token_type_ids=None, attention_mask=None) -> torch.Tensor:
        """Vocabulary logits at every position [B, L, V] (fill-mask and tests; training never needs them)."""
        return self.cls.predictions(self.bert(input_ids, token_type_ids, attention_mask))

    @torch.no_grad()
    def start_from_token_frequencies(self, counts: torch.Tensor, mlm_probability: float) -> None:
        """Set the MLM bias to the log of each token's (add-one smoothed) corpus frequency.

        The untrained model then already predicts word frequencies, the first thing masked LM
        learns. Left at zero, a bias moves about one learning rate per Adam step, so matching
        frequencies that span ten nats would take thousands of steps; the network gets there
        sooner by pushing a shared frequency direction into its hidden states and embeddings,
        and fine-tuning inherits those distorted features. (`mlm_probability` is unused here;
        ELECTRA's discriminator needs it.)
        """
        self.cls.predictions.bias.copy_(log_frequencies(counts))


@dataclass
class ClassificationOutput:
    logits: torch.Tensor  # [B, num_labels]; [B, 1] for regression
    loss: torch.Tensor | None


class BertForSequenceClassification(nn.Module):
    """Dropout + linear on the pooled [CLS]; `num_labels == 1` means regression with MSE."""

    def __init__(self, config: BertConfig, num_labels: int, classifier_dropout: float | None = None):
        super().__init__()
        self.config = config
        self.num_labels = num_labels
        self.bert = BertModel(config, add_pooling_layer=True)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if classifier_dropout is None else classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        init_bert_weights(self, config.initializer_range)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None) -> ClassificationOutput:
        pooled = self.bert.required_pooler().pool(self.bert(input_ids, token_type_ids, attention_mask, first_token_only=True))
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels)
        return ClassificationOutput(logits, loss)


@dataclass
class SpanOutput:
    start_logits: torch.Tensor  # [B, L]
    end_logits: torch.Tensor  # [B, L]
    loss: torch.Tensor | None


class BertForQuestionAnswering(nn.Module):
    """Start/end logits per token for extractive QA; no pooler, as in Hugging Face."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        init_bert_weights(self, config.initializer_range)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, start_positions=None, end_positions=None) -> SpanOutput:
        logits = self.qa_outputs(self.bert(input_ids, token_type_ids, attention_mask)).float()
        start_logits, end_logits = logits.unbind(-1)
        if attention_mask is not None:
            # Padding must never be chosen as an answer boundary.
            start_logits = start_logits.masked_fill(attention_mask == 0, torch.finfo(start_logits.dtype).min)
            end_logits = end_logits.masked_fill(attention_mask == 0, torch.finfo(end_logits.dtype).min)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = (F.cross_entropy(start_logits, start_positions) + F.cross_entropy(end_logits, end_positions)) / 2
        return SpanOutput(start_logits, end_logits, loss)


@dataclass
class TokenClassificationOutput:
    logits: torch.Tensor  # [B, L, num_labels]
    loss: torch.Tensor | None


class BertForTokenClassification(nn.Module):
    """Dropout + linear on every token's output (named entities); no pooler, as in Hugging Face."""

    def __init__(self, config: BertConfig, num_labels: int, classifier_dropout: float | None = None):
        super().__init__()
        self.config = config
        self.num_labels = num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if classifier_dropout is None else classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        init_bert_weights(self, config.initializer_range)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None) -> TokenClassificationOutput:
        logits = self.classifier(self.dropout(self.bert(input_ids, token_type_ids, attention_mask)))
        loss = None
        if labels is not None:
            counted = int((labels != IGNORE_LABEL).sum())
            # Summed and divided by max(count, 1): a batch whose pieces are all ignored gives 0, not NaN.
            summed = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_LABEL, reduction="sum")
            loss = _mean_over_counted(summed, counted)
        return TokenClassificationOutput(logits, loss)


__all__ = [
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertPooler",
    "ClassificationOutput",
    "IGNORE_LABEL",
    "IGNORE_NSP",
    "PreTrainingOutput",
    "SpanOutput",
]
