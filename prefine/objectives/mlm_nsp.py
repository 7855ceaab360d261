"""`--objective mlm+nsp`: BERT's original recipe, masked LM on sentence pairs plus next-sentence prediction."""

from __future__ import annotations

from prefine.objectives.interface import register_objective
from prefine.objectives.masked_lm import MaskedLMObjective


class MaskedLMWithNextSentence(MaskedLMObjective):
    name = "mlm+nsp"
    help = "BERT sentence pairs with next-sentence prediction"
    sentence_pairs = True


register_objective(MaskedLMWithNextSentence())
