"""Pre-training objectives: masked LM, BERT's MLM + NSP and ELECTRA, each one module behind one interface.

`prefine pretrain` runs whichever objective --objective names through `PretrainingObjective`
(prefine.objectives.interface); docs/adding-an-objective.md shows how to add one.
"""

from prefine.objectives.interface import (
    CHECKPOINT_OBJECTIVE_KEY,
    DEFAULT_OBJECTIVE,
    PretrainingObjective,
    all_objectives,
    get_objective,
    objective_names,
    objective_of_checkpoint,
    register_objective,
)

__all__ = [
    "CHECKPOINT_OBJECTIVE_KEY",
    "DEFAULT_OBJECTIVE",
    "PretrainingObjective",
    "all_objectives",
    "get_objective",
    "objective_names",
    "objective_of_checkpoint",
    "register_objective",
]
