"""`--objective mlm`: RoBERTa-style masked LM on packed full sentences, without next-sentence prediction.

prefine's default objective (`prefine.objectives.interface.DEFAULT_OBJECTIVE` says why).
"""

from __future__ import annotations

from prefine.objectives.interface import register_objective
from prefine.objectives.masked_lm import MaskedLMObjective


class MaskedLM(MaskedLMObjective):
    name = "mlm"
    help = "RoBERTa-style packed full sentences, masked LM only (use it for corpora of one-sentence documents)"
    sentence_pairs = False


register_objective(MaskedLM())
