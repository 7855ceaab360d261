"""The model stage: a BERT encoder with Hugging Face's parameter names, its presets and task heads."""

from prefine.labels import IGNORE_LABEL, IGNORE_NSP
from prefine.model.bert import BertModel, count_parameters, encoder_flops_per_token, init_bert_weights
from prefine.model.config import PRESETS, BertConfig, bert_config_fields, config_from_dict, preset_config
from prefine.model.heads import (
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
)

__all__ = [
    "BertConfig",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertModel",
    "IGNORE_LABEL",
    "IGNORE_NSP",
    "PRESETS",
    "bert_config_fields",
    "config_from_dict",
    "count_parameters",
    "encoder_flops_per_token",
    "init_bert_weights",
    "preset_config",
]
