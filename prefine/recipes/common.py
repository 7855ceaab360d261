"""What every recipe shares: where weights come from (--init), run records, and resume checks.

`--init` accepts three kinds of source, resolved here once for all recipes:
a prefine run folder (its best or latest checkpoint and its tokenizer), a prefine checkpoint
folder inside a run, or a Hugging Face BERT (or ELECTRA) folder / Hub name (through `prefine.interop`).
An ELECTRA source is handed on as its discriminator's encoder under BERT's names, so every
recipe that starts from a BERT encoder starts from it unchanged; `InitSource.electra` keeps the
whole pre-training state for the recipes that need the generator (continued pre-training, fill-mask).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

import prefine
from prefine.checkpoint import (
    CHECKPOINTS_DIR,
    TOKENIZER_DIR,
    is_run_dir,
    load_model_config,
    load_weights,
    model_checkpoint_of,
)
from prefine.errors import PrefineError

# Weight loading lives below the tasks, which call it too; recipes and their tests keep importing it from here.
from prefine.interop.initial_weights import check_reinit_layers, load_initial_weights  # noqa: F401
from prefine.model import BertConfig, config_from_dict
from prefine.model.electra import ElectraWeights, electra_weights_from_checkpoint, is_electra_checkpoint_config
from prefine.registry import RunRegistry, default_registry_path
from prefine.tokenizer import load_tokenizer, tokenizer_fingerprint


@dataclass
class InitSource:
    """Weights, config and tokenizer to start a run from, and where they came from."""

    config: BertConfig
    state_dict: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    description: str
    run_dir: Path | None  # the prefine run that produced the weights, if any
    checkpoint: Path | None
    model_config_json: dict[str, Any]
    imported_from_hf: bool = False
    # An ELECTRA source: its whole pre-training state (config and state_dict above are its discriminator as BERT).
    electra: ElectraWeights | None = None


def default_cache_dir() -> Path:
    return Path(os.environ.get("PREFINE_CACHE") or Path.home() / ".cache" / "prefine")


def run_dir_of_checkpoint(path: Path) -> Path | None:
    if path.parent.name == CHECKPOINTS_DIR and is_run_dir(path.parent.parent):
        return path.parent.parent
    return None


def resolve_init(source: str) -> InitSource:
    """Load the weights named by --init: a prefine run, a prefine checkpoint, or a Hugging Face model."""
    path = Path(source)
    if path.is_dir() and is_run_dir(path):
        checkpoint = model_checkpoint_of(path)
        return _from_prefine_checkpoint(checkpoint, path)
    if path.is_dir() and run_dir_of_checkpoint(path) is not None:
        return _from_prefine_checkpoint(path, run_dir_of_checkpoint(path))
    from prefine.interop import import_hf_checkpoint
    from prefine.interop.encoder_decoder import import_hf_encoder_decoder, is_hf_encoder_decoder_dir

    imported = import_hf_encoder_decoder(path) if is_hf_encoder_decoder_dir(path) else import_hf_checkpoint(source)
    return InitSource(
        config=imported.config,
        state_dict=imported.state_dict,
        tokenizer=imported.tokenizer,
        description=f"Hugging Face checkpoint {imported.source}",
        run_dir=None,
        checkpoint=None,
        model_config_json=dataclasses.asdict(imported.config),
        imported_from_hf=True,
        electra=imported.electra,
    )


def _from_prefine_checkpoint(checkpoint: Path, run_dir: Path) -> InitSource:
    config_json = load_model_config(checkpoint)
    weights = load_weights(checkpoint)
    electra = None
    if is_electra_checkpoint_config(config_json):
        # Fine-tuning starts from the discriminator (ELECTRA's rule), given as a plain BERT encoder.
        electra = electra_weights_from_checkpoint(config_json, weights, str(checkpoint / "config.json"))
        config, weights = electra.config, electra.bert_encoder_state()
    else:
        config = config_from_dict(config_json, str(checkpoint / "config.json"))
    tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
    check_tokenizer_matches(tokenizer, config, run_dir / TOKENIZER_DIR, checkpoint)
    return InitSource(config, weights, tokenizer, f"prefine checkpoint {checkpoint}", run_dir, checkpoint, config_json, electra=electra)


def check_tokenizer_matches(tokenizer: Tokenizer, config: BertConfig, tokenizer_dir: Path, checkpoint: Path) -> None:
    if tokenizer.get_vocab_size() != config.vocab_size:
        raise PrefineError(
            f"tokenizer {tokenizer_dir} has {tokenizer.get_vocab_size()} tokens but checkpoint {checkpoint} was built for "
            f"{config.vocab_size}; use the tokenizer saved with that checkpoint"
        )
    recorded = load_model_config(checkpoint).get("tokenizer_fingerprint")
    if recorded and recorded != tokenizer_fingerprint(tokenizer):
        raise PrefineError(
            f"tokenizer {tokenizer_dir} is not the one checkpoint {checkpoint} was trained with (fingerprints differ); "
            "restore the run's own tokenizer folder"
        )


def open_registry(explicit: str, run_dir: Path | None) -> RunRegistry:
    return RunRegistry(Path(explicit) if explicit else default_registry_path(run_dir))


def parent_run_id(registry: RunRegistry, init: InitSource | None, init_arg: str) -> int | None:
    """The registry id of the run whose weights --init loads; an outside checkpoint gets an import run."""
    if init is None:
        return None
    if init.run_dir is not None:
        record = registry.find_by_artifact(init.run_dir)
        return record.id if record else None
    existing = registry.find_by_artifact(Path(init_arg)) if Path(init_arg).exists() else None
    if existing is not None and existing.kind == "import":
        return existing.id
    artifact = Path(init_arg).resolve() if Path(init_arg).exists() else Path(init_arg)
    record = registry.start_run(
        name=f"import-{Path(init_arg).name or init_arg}",
        kind="import",
        config={"source": init_arg, "model": dataclasses.asdict(init.config)},
        data_fingerprints=None,
        tokenizer_hash=tokenizer_fingerprint(init.tokenizer),
        artifact_path=artifact,
    )
    registry.finish_run(record.id, "completed")
    return record.id


def check_resume_overrides(saved: dict[str, Any], requested: dict[str, Any], allowed: frozenset[str], group: str) -> None:
    """A resumed run may only change settings that do not alter what a step computes."""
    for key, value in requested.items():
        if key in allowed or key not in saved:
            continue
        if saved[key] != value:
            flag = "--" + key.replace("_", "-")
            raise PrefineError(
                f"cannot change {flag} when resuming ({group} was made with {saved[key]!r}, asked for {value!r}); "
                "drop the flag, or start a new run with another --out"
            )


def run_record(kind: str, **sections: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": kind, "prefine_version": prefine.__version__, "torch_version": torch.__version__}
    for name, value in sections.items():
        record[name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return record


def start_finetune(run, device: str, max_length: int, length_flag: str, train_hint: str = "--train FILE", resume: bool = False):
    """Checks every fine-tuning makes before any work: arguments, output folder, model length.

    Returns the run folder, the distributed context and the loaded --init weights.
    """
    from prefine.training import init_distributed

    if not run.init:
        raise PrefineError("pass --init with a pre-trained run (or Hugging Face folder) to fine-tune from")
    if not run.train or not run.out:
        raise PrefineError(f"pass {train_hint} and --out FOLDER")
    run_dir = Path(run.out)
    if resume and not is_run_dir(run_dir):
        raise PrefineError(f"{run_dir} holds no run to resume; pass the --out folder of an interrupted prefine finetune")
    if not resume and is_run_dir(run_dir):
        raise PrefineError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    if not (run.dropout == -1 or 0.0 <= run.dropout < 1.0):
        raise PrefineError(f"--dropout {run.dropout} must be in [0, 1) (or -1 to keep the checkpoint's own dropout)")
    if not 0.0 < run.train_fraction <= 1.0:
        raise PrefineError(f"--train-fraction {run.train_fraction} must be in (0, 1]")
    context = init_distributed(device)
    init = resolve_init(run.init)
    if run.dropout >= 0:
        init.config = dataclasses.replace(init.config, hidden_dropout_prob=run.dropout, attention_probs_dropout_prob=run.dropout)
    # Checked here, before any data is read, as well as where the blocks are re-initialised.
    check_reinit_layers(run.reinit_layers, init.config.num_hidden_layers)
    if max_length > init.config.max_position_embeddings:
        raise PrefineError(f"{length_flag} {max_length} exceeds the model's {init.config.max_position_embeddings} positions; lower it")
    return run_dir, context, init


# Fine-tuning learning rates that work fall with model width: BERT-base is fine-tuned at 2e-5 to
# 5e-5, while a 4x256 mini learns nothing from 2,000 labels in 3 epochs at 1e-4 and does best
# near 3e-4 (pre-trained or not; benchmarks/objectives.py and issue 15's probe), and the tiny
# quickstart model at 1e-3. A power law through those points (1e-3 at 128, 3e-4 at 256, 5e-5 at
# 768) gives every width a rate in the range that works for it.
FINETUNE_RATE_AT_256 = 3e-4
FINETUNE_RATE_EXPONENT = 1.63


def finetune_learning_rate(config: BertConfig) -> float:
    """The default peak fine-tuning learning rate for a model of this width (see above)."""
    rate = FINETUNE_RATE_AT_256 * (256 / config.hidden_size) ** FINETUNE_RATE_EXPONENT
    return float(f"{rate:.2g}")


def with_finetune_learning_rate(training, config: BertConfig):
    """`training` with its learning rate chosen by model width when the user left it at 0 (auto)."""
    if training.learning_rate > 0:
        return training
    return dataclasses.replace(training, learning_rate=finetune_learning_rate(config))


def file_fingerprint(path: str) -> dict | None:
    """Cheap identity of a data file for the registry: path, size and modification time."""
    source = Path(path)
    if not source.exists():
        return {"name": path}
    stat = source.stat()
    return {"path": str(source.resolve()), "bytes": stat.st_size, "mtime": int(stat.st_mtime)}


def recorded_finetune(run, run_dir: Path, init: InitSource, record: dict, tokenizer_hash: str, is_main: bool, resume: bool = False):
    """The registry record of a fine-tuning run (on rank 0; other ranks get a handle that records nothing)."""
    import contextlib

    from prefine.registry import RunHandle, recorded_run

    if not is_main:
        return contextlib.nullcontext(RunHandle(record=None))
    registry = open_registry(run.registry, run_dir)
    return recorded_run(
        registry,
        resume_artifact=resume,
        name=run.name or run_dir.name,
        kind="finetune",
        parent_id=None if run.from_scratch else parent_run_id(registry, init, run.init),
        config=record,
        data_fingerprints={
            "train": file_fingerprint(run.train),
            "eval": file_fingerprint(run.eval) if run.eval else None,
            "test": file_fingerprint(run.test) if getattr(run, "test", "") else None,
        },
        tokenizer_hash=tokenizer_hash,
        artifact_path=run_dir,
    )
