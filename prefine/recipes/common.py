"""What every recipe shares: run records, the registry, resume checks and the learning-rate rule.

Where `--init` weights come from and how they load (`resolve_init`, `InitSource`,
`load_initial_weights`) lives below, in prefine.interop.initial_weights, since inference and the
tasks need it too; the recipes import it from here as before.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

import prefine
from prefine.checkpoint import (
    is_run_dir,
)
from prefine.errors import PrefineError

# --init lives below the tasks and inference, which call it too; recipes and their tests keep importing it from here.
from prefine.interop.initial_weights import (  # noqa: F401
    InitSource,
    check_reinit_layers,
    check_tokenizer_matches,
    load_initial_weights,
    resolve_init,
    run_dir_of_checkpoint,
)
from prefine.model import BertConfig
from prefine.registry import RunHandle, RunRegistry, default_registry_path, recorded_run
from prefine.tokenizer import tokenizer_fingerprint
from prefine.training import init_distributed


def default_cache_dir() -> Path:
    return Path(os.environ.get("PREFINE_CACHE") or Path.home() / ".cache" / "prefine")


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
        record[name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
    return record


def start_finetune(run, device: str, max_length: int, length_flag: str, train_hint: str = "--train FILE", resume: bool = False):
    """Checks every fine-tuning makes before any work: arguments, output folder, model length.

    Returns the run folder, the distributed context and the loaded --init weights.
    """

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
