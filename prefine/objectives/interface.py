"""The pre-training objective interface: what an objective declares once so `prefine pretrain` can run it.

An objective (masked LM, BERT's MLM + NSP, ELECTRA, and whatever a user adds) is one
`PretrainingObjective` subclass registered with `register_objective`. The pre-training recipe
only ever talks to this interface, so adding an objective means writing one module, never
editing the recipe:

    flags:       --objective's choices and help come from the registry; the fields of an objective's
                 `settings_config` become its own flags (refused under another objective)
    data:        `sentence_pairs` picks the layout prefine.pretraining_data builds: BERT's sentence pairs,
                 each with a next-sentence label, or RoBERTa's packed full sentences (both masked)
    new model:   new_model_settings -> build_model -> start_from_token_frequencies (--frequency-bias)
    --init:      check_init (before any work) -> model_from_init
    training:    training_task: the loop's view (seekable batches, the loss, held-out metrics)
    saving:      checkpoint_config (each checkpoint's config.json) and run_sections (run.json), which
                 build_model reads back on --resume
    reporting:   describe_model (start-up lines), headline_metric (the registry's), summary (end-of-run lines)
    export:      export_hf (None: the plain BERT export of `architecture`)

run.json records the objective under data.objective and every checkpoint's config.json under
`CHECKPOINT_OBJECTIVE_KEY`; code that reads either dispatches through `get_objective`
(`objective_of_checkpoint` for a bare checkpoint folder).
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Protocol, cast

import torch
from tokenizers import Tokenizer
from torch import nn

from prefine.config import option
from prefine.errors import PrefineError
from prefine.model import BertConfig
from prefine.model.electra import ElectraWeights
from prefine.pretraining_data import PretrainingBatches
from prefine.pretraining_data.config import declare_layout
from prefine.training.loop import TrainingTask

# Modules holding the objectives that ship with prefine; each calls register_objective when imported.
# Their order is the order --objective's help lists them in.
BUILTIN_OBJECTIVE_MODULES = ("prefine.objectives.mlm", "prefine.objectives.mlm_nsp", "prefine.objectives.electra")

# What a plain `prefine pretrain` trains. RoBERTa's FULL-SENTENCES packing: every position of every
# sequence is text to learn from, where BERT's sentence pairs shorten 10% of sequences and truncate
# the rest; RoBERTa found next-sentence prediction does not help downstream, and most corpora of
# reviews are one sentence per document, where NSP gets no examples at all. --objective mlm+nsp
# gives BERT's original recipe.
DEFAULT_OBJECTIVE = "mlm"

# The key of a checkpoint's config.json that names the objective which trained it.
CHECKPOINT_OBJECTIVE_KEY = "pretraining_objective"


class InitWeights(Protocol):
    """What --init hands an objective (`prefine.recipes.common.InitSource` has these and more)."""

    config: BertConfig
    state_dict: dict[str, torch.Tensor]
    description: str
    electra: ElectraWeights | None  # an ELECTRA source's whole pre-training state (generator included)


class PretrainingObjective(ABC):
    """One pre-training objective. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]  # --objective NAME, recorded in run.json (data.objective) and config.json
    help: ClassVar[str]  # one line for --objective's help
    sentence_pairs: ClassVar[bool] = False  # BERT's sentence pairs with next-sentence labels, else packed sentences
    settings_config: ClassVar[type | None] = None  # dataclass of the objective's own flags, saved in run.json under `name`
    architecture: ClassVar[str]  # the model class a checkpoint's config.json names in "architectures"
    headline_metric: ClassVar[str | None] = None  # the held-out metric the run registry ranks pre-training runs by
    learning_rate: ClassVar[float | None] = None  # peak learning rate when not pre-training's default (--learning-rate wins)
    # Whether the model can start from an --init whose embeddings are narrower than its blocks
    # (ELECTRA-Small's layout): a head that scores the vocabulary from hidden_size-wide states
    # against the embedding table cannot.
    accepts_narrow_embeddings: ClassVar[bool] = False

    def new_model_settings(self, defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
        """The preset's replacements for a new model: pre-training's `defaults`, then the user's model flags."""
        return {**defaults, **overrides}

    def check_init(self, config: BertConfig, source: str) -> None:
        """Refuse an --init encoder this objective's model cannot be built from, before any work is done."""
        if config.embedding_size and not self.accepts_narrow_embeddings:
            takers = [objective.name for objective in all_objectives() if objective.accepts_narrow_embeddings]
            instead = f"continue it with --objective {' or '.join(takers)}, or fine-tune it" if takers else "fine-tune it instead"
            raise PrefineError(
                f"--init {source} projects {config.embedding_size}-wide embeddings up to {config.hidden_size} "
                f"(ELECTRA-Small's layout), which --objective {self.name}'s head cannot score the vocabulary with; {instead}"
            )

    @abstractmethod
    def build_model(self, config: BertConfig, settings: Any, saved_run: dict[str, Any] | None) -> nn.Module:
        """A new model around an encoder of `config`; `saved_run` is the run.json of a run being resumed (else None)."""

    @abstractmethod
    def model_from_init(self, init: InitWeights, settings: Any) -> nn.Module:
        """The model filled from --init's weights (what the source lacks starts fresh, and says so)."""

    def start_from_token_frequencies(  # noqa: B027  (optional: a model without vocabulary biases has nothing to start)
        self, model: nn.Module, counts: torch.Tensor, mlm_probability: float
    ) -> None:
        """Start a new model's output biases from the corpus's token counts (--frequency-bias); nothing by default."""

    def word_embedding_tables(self, model: nn.Module) -> list[nn.Embedding]:
        """The model's word-piece input tables that --embedding-init fills: by default every
        `nn.Embedding` named `word_embeddings` (one for BERT; the generator's and discriminator's,
        or their one shared table, for ELECTRA)."""
        tables = [module for name, module in model.named_modules() if name.endswith("word_embeddings") and isinstance(module, nn.Embedding)]
        return list({id(table): table for table in tables}.values())

    @abstractmethod
    def training_task(
        self, train_batches: PretrainingBatches, eval_batches: list[dict[str, Any]], device: torch.device, settings: Any
    ) -> TrainingTask:
        """The loop's view: seekable training batches, the loss of a batch, held-out metrics on `eval_batches`."""

    def checkpoint_config(self, model: nn.Module) -> dict[str, Any]:
        """Each checkpoint's config.json: by default the encoder's BertConfig, model_type bert and `architecture`.

        Keep model_type "bert" wherever the encoder is a plain BERT under `bert.`: then `--init RUN`
        (fine-tuning, continued pre-training) reads the checkpoint as any BERT.
        """
        return {**dataclasses.asdict(cast(BertConfig, model.config)), "model_type": "bert", "architectures": [self.architecture]}

    def run_sections(self, model: nn.Module, settings: Any) -> dict[str, Any]:
        """Sections this objective adds to run.json; by default its settings under its name."""
        return {self.name: settings} if self.settings_config is not None else {}

    def saved_settings(self, saved_run: dict[str, Any]) -> dict[str, Any]:
        """The settings a run recorded in its run.json (the inverse of `run_sections`), as a dict of fields."""
        return dict(saved_run.get(self.name) or {})

    def describe_model(self, model: nn.Module) -> list[str]:
        """Lines printed at start-up about the model beyond its size (ELECTRA's two networks); none by default."""
        return []

    def summary(
        self, last_eval: dict[str, float], run_dir: Path, train_batches: PretrainingBatches, eval_batches: list[dict[str, Any]]
    ) -> list[str]:
        """Lines printed at the end of a run, read from its last held-out metrics; none by default."""
        return []

    def export_hf(self, checkpoint: Path, tokenizer: Tokenizer, config_json: dict[str, Any], out_dir: Path) -> Path | None:
        """Optional: write a checkpoint as Hugging Face folder(s) and return the folder.

        None (the default) leaves it to `prefine export`'s plain BERT export of `architecture`;
        an objective whose model is not a BERT with heads (ELECTRA's two networks) writes its own.
        """
        return None


# ---------------------------------------------------------------------------------------------
# The registry of objectives

_OBJECTIVES: dict[str, PretrainingObjective] = {}
_builtins_loaded = False


def register_objective(objective: PretrainingObjective) -> PretrainingObjective:
    """Make `objective` available to `prefine pretrain` under its name (a later registration of a name wins)."""
    # The built-in objectives first, whichever module was imported first: --objective lists them in a fixed order.
    _load_builtins()
    _OBJECTIVES[objective.name] = objective
    declare_layout(objective.name, objective.sentence_pairs)
    return objective


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_OBJECTIVE_MODULES:
            importlib.import_module(module)


def all_objectives() -> list[PretrainingObjective]:
    """Every registered objective, in registration order."""
    _load_builtins()
    return list(_OBJECTIVES.values())


def objective_names() -> list[str]:
    _load_builtins()
    return list(_OBJECTIVES)


def get_objective(name: str) -> PretrainingObjective:
    _load_builtins()
    if name not in _OBJECTIVES:
        raise PrefineError(f"unknown objective '{name}'; choose one of {', '.join(objective_names())}")
    return _OBJECTIVES[name]


def objective_of_checkpoint(config_json: dict[str, Any]) -> PretrainingObjective | None:
    """The objective that wrote a pre-training checkpoint's config.json; None for a fine-tuned checkpoint.

    Checkpoints written before config.json named its objective are known by their architecture.
    """
    if CHECKPOINT_OBJECTIVE_KEY in config_json:
        return get_objective(config_json[CHECKPOINT_OBJECTIVE_KEY])
    architectures = config_json.get("architectures") or []
    return next((objective for objective in all_objectives() if objective.architecture in architectures), None)


def objective_flag_config(default: str = DEFAULT_OBJECTIVE) -> type:
    """A dataclass of the one field `objective`, whose flag's choices and help are the registered objectives'.

    Built when the parser is, after every registration, so an objective registered outside the
    package is a choice like a built-in one; `prefine.config` turns it into --objective.
    """
    help_text = "; ".join(f"{objective.name}: {objective.help}" for objective in all_objectives())
    field = option(default, help_text, choices=objective_names())
    return dataclasses.make_dataclass("ObjectiveFlag", [("objective", str, field)])
