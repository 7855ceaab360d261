"""Settings of the pre-training data pipeline: sequence length, objective, masking and eval split.

The pipeline builds one of two layouts: BERT's sentence pairs, each with a next-sentence label,
or RoBERTa's packed full sentences. Which one follows from the objective's name
(`PretrainingDataConfig.sentence_pairs`); objectives declare their layout when they register
(`prefine.objectives`), so this package never needs to know them.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefine.config import option
from prefine.errors import PrefineError

# [CLS] A [SEP] B [SEP] needs three special tokens and at least one token in each of A and B.
MIN_SEQ_LENGTH = 5
# Objectives trained on sentence pairs; every other objective trains on packed full sentences.
# BERT's original recipe, this config's own default, is declared here so the pipeline works on
# its own; every other objective declares its layout through `declare_layout` when it registers.
_SENTENCE_PAIR_OBJECTIVES = {"mlm+nsp"}


def declare_layout(objective: str, sentence_pairs: bool) -> None:
    """Record whether `objective` trains on sentence pairs (True) or on packed full sentences (False)."""
    if sentence_pairs:
        _SENTENCE_PAIR_OBJECTIVES.add(objective)
    else:
        _SENTENCE_PAIR_OBJECTIVES.discard(objective)


@dataclass
class PretrainingDataConfig:
    max_seq_length: int = option(128, "Tokens per pre-training sequence, special tokens included")
    # Its --objective flag, choices and help come from the objective registry (prefine.objectives).
    objective: str = option("mlm+nsp", "the pre-training objective (a name registered in prefine.objectives)", cli=False)
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
        if self.separate_documents and self.sentence_pairs:
            raise PrefineError(
                f"--separate-documents lays out packed documents, and --objective {self.objective} builds sentence pairs; "
                "use it with a packed objective such as --objective mlm or electra"
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

    @property
    def sentence_pairs(self) -> bool:
        """Whether the objective trains on BERT's sentence pairs (else on packed full sentences)."""
        return self.objective in _SENTENCE_PAIR_OBJECTIVES
