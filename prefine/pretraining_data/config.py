"""Settings of the pre-training data pipeline: sequence length, objective, masking and eval split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prefine.config import option
from prefine.errors import PrefineError

# [CLS] A [SEP] B [SEP] needs three special tokens and at least one token in each of A and B.
MIN_SEQ_LENGTH = 5
# Objectives trained on RoBERTa-style packed full sentences (no sentence pairs, no NSP).
PACKED_OBJECTIVES = ("mlm", "electra")


@dataclass
class PretrainingDataConfig:
    max_seq_length: int = option(128, "Tokens per pre-training sequence, special tokens included")
    objective: Literal["mlm+nsp", "mlm", "electra"] = option(
        "mlm+nsp",
        "mlm+nsp: BERT sentence pairs with next-sentence prediction; "
        "mlm: RoBERTa-style packed full sentences, masked LM only (use it for corpora of one-sentence documents); "
        "electra: the same packed sentences and masks, a small generator fills the masks and the encoder learns to spot "
        "its replacements at every position (ELECTRA)",
    )
    short_seq_prob: float = option(0.1, "Fraction of mlm+nsp instances given a random shorter length, so the model also sees short inputs")
    separate_documents: bool = option(
        False,
        "Packed objectives (mlm, electra): lay each document of a packed sequence out as its own row, [CLS] document [SEP] "
        "from position 0, attending only to itself, as fine-tuning will read it. The text per batch is the same; each "
        "document costs one more special token. Without it, documents shorter than --max-seq-length share one row and "
        "attend across each other",
    )
    mlm_probability: float = option(0.15, "Fraction of (non-special) tokens the model must predict")
    mask_token_prob: float = option(0.8, "Of the tokens to predict, the fraction replaced by [MASK]")
    random_token_prob: float = option(0.1, "Of the tokens to predict, the fraction replaced by a random token (the rest stay)")
    whole_word_masking: bool = option(False, "Mask all WordPiece pieces of a word together")
    eval_fraction: float = option(0.02, "Fraction of documents held out for evaluation")
    max_eval_instances: int = option(1000, "Most held-out instances evaluated each time")
    tokenize_batch_size: int = option(1000, "Documents per parallel tokenizer call while building the token cache")

    def __post_init__(self) -> None:
        if self.objective not in PACKED_OBJECTIVES + ("mlm+nsp",):
            raise PrefineError(f"unknown objective {self.objective!r}; use --objective mlm, mlm+nsp or electra")
        if self.separate_documents and self.objective not in PACKED_OBJECTIVES:
            raise PrefineError(
                f"--separate-documents lays out packed documents, and --objective {self.objective} builds sentence pairs; "
                "use it with --objective mlm or electra"
            )
        if self.max_seq_length < MIN_SEQ_LENGTH:
            raise PrefineError(f"--max-seq-length {self.max_seq_length} is too small; use at least {MIN_SEQ_LENGTH}")
        for name in ("short_seq_prob", "mlm_probability", "mask_token_prob", "random_token_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise PrefineError(f"--{name.replace('_', '-')} {value} is not a probability; use a value in [0, 1]")
        if self.mask_token_prob + self.random_token_prob > 1.0:
            raise PrefineError(
                f"--mask-token-prob {self.mask_token_prob} plus --random-token-prob {self.random_token_prob} exceeds 1; lower one of them"
            )
        if not 0.0 < self.eval_fraction < 1.0:
            raise PrefineError(f"--eval-fraction {self.eval_fraction} must be strictly between 0 and 1")
        if self.max_eval_instances < 1:
            raise PrefineError(f"--max-eval-instances {self.max_eval_instances} must be at least 1")
        if self.tokenize_batch_size < 1:
            raise PrefineError(f"--tokenize-batch-size {self.tokenize_batch_size} must be at least 1")
