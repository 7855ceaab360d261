"""Export a prefine run (or checkpoint) as a Hugging Face folder that transformers loads as is.

The folder holds config.json (model_type "bert", the architecture, labels for classifiers),
model.safetensors with transformers' parameter names, and the run's tokenizer files. Our
parameter names already are transformers', so the export is a copy plus checks; the tied MLM
decoder is left out exactly as transformers' own `save_pretrained` leaves it out (safetensors
cannot store a shared tensor) and transformers re-ties it on load. An untied MLM head
(`tie_word_embeddings` false, the default of pre-training from scratch) writes its matrix, and its
bias under the decoder's name too, since an untied transformers head scores with
`cls.predictions.decoder.bias`.

Before writing, the weights are loaded strictly into the prefine class named by the checkpoint,
so a checkpoint that would not even run in prefine is never exported.

A pre-training run exports the way its objective says (an ELECTRA run as two folders, the
discriminator and its generator).

`--format onnx` writes model.onnx (the task's forward on input_ids, attention_mask and
token_type_ids, dynamic batch and sequence axes; the outputs the task's `onnx_outputs` names),
the tokenizer files and the config.json keys the task adds (labels), for every task whose model
answers in one encoder forward; the graph is checked in ONNX Runtime against prefine's own
outputs before anything is written. A generation run (its task refuses) and a pre-training run are
refused in one line. So, in either format, is a run whose tokenizer cuts Korean morphemes
(`--morphemes kiwi`): tokenizer.json has no way to express that step, and a folder that silently
tokenizes differently from training would give wrong predictions. The files go to a temporary
folder beside --out and are moved in only once all of them are written and checked.

The command lives with the recipes, not in `prefine.interop`, because it dispatches on the task
registry: the task that trained the run (recorded in the checkpoint's config.json and the run's
run.json) rebuilds the model and adds its keys, since two tasks can share one transformers class.
The layouts it writes come from the layers below.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from prefine.atomic_files import process_start_time
from prefine.checkpoint import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    RUN_FILE,
    TOKENIZER_DIR,
    WEIGHTS_FILE,
    give_default_permissions,
    is_run_dir,
    load_model_config,
    load_weights,
    model_checkpoint_of,
    read_run,
)
from prefine.config import add_dataclass_arguments, from_args, option
from prefine.errors import PrefineError
from prefine.interop.huggingface import DECODER_BIAS, DECODER_WEIGHT, MLM_BIAS
from prefine.interop.onnx_export import MODEL_FILE, ONNX_OPSET, example_batches, require_onnx, write_onnx
from prefine.model import BertConfig, BertForPreTraining, bert_config_fields, config_from_dict
from prefine.objectives import PretrainingObjective, objective_of_checkpoint
from prefine.tasks.interface import FinetuneTask, all_tasks, get_task, task_for_architecture
from prefine.tokenizer import load_tokenizer, recorded_morphemes, save_tokenizer

PRETRAINING_ARCHITECTURE = "BertForPreTraining"


def supported_architectures() -> list[str]:
    """Pre-training plus the architecture each registered fine-tuning task declares."""
    return [PRETRAINING_ARCHITECTURE] + [task.architecture for task in all_tasks()]


def _locate(run_or_checkpoint: Path) -> tuple[Path, Path]:
    """(checkpoint folder, tokenizer folder) for a run folder or a checkpoint folder, refused when
    its tokenizer cuts morphemes, which no exported tokenizer file can reproduce."""
    checkpoint, tokenizer_dir = _find_checkpoint(run_or_checkpoint)
    analyser = recorded_morphemes(tokenizer_dir)
    if analyser is not None:
        raise PrefineError(
            f"{run_or_checkpoint}'s tokenizer cuts Korean words into morphemes with {analyser} (--morphemes {analyser}), which a "
            "tokenizer.json cannot express, so transformers or ONNX users would get other pieces than the model learned; "
            "use the run with prefine predict, evaluate or serve, or pre-train with --morphemes none to export"
        )
    return checkpoint, tokenizer_dir


def _find_checkpoint(run_or_checkpoint: Path) -> tuple[Path, Path]:
    path = Path(run_or_checkpoint)
    if not path.is_dir():
        raise PrefineError(f"{path} not found; pass a prefine run folder (the --out of pretrain or finetune) or one of its checkpoints")
    if is_run_dir(path):
        return model_checkpoint_of(path), path / TOKENIZER_DIR
    if (path / WEIGHTS_FILE).is_file() and (path / CONFIG_FILE).is_file():
        candidates = [path / TOKENIZER_DIR]
        if path.parent.name == CHECKPOINTS_DIR:
            candidates.insert(0, path.parent.parent / TOKENIZER_DIR)
        for tokenizer_dir in candidates:
            if tokenizer_dir.is_dir():
                return path, tokenizer_dir
        raise PrefineError(
            f"no tokenizer folder found for checkpoint {path} (looked in {', '.join(map(str, candidates))}); export the run folder instead"
        )
    raise PrefineError(f"{path} is neither a prefine run (no {RUN_FILE}) nor a checkpoint folder (no {WEIGHTS_FILE} + {CONFIG_FILE})")


def _architecture(config_json: dict, source: Path) -> str:
    architectures = config_json.get("architectures") or []
    if len(architectures) != 1 or architectures[0] not in supported_architectures():
        raise PrefineError(
            f"{source / CONFIG_FILE}: architectures {architectures} cannot be exported; supported: {', '.join(supported_architectures())}"
        )
    return architectures[0]


def recorded_task_name(checkpoint: Path, config_json: dict) -> str | None:
    """The task that trained a checkpoint: its config.json's "task", else its run's run.json "task" (a fine-tuning run)."""
    if config_json.get("task"):
        return str(config_json["task"])
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS_DIR else None
    if run_dir is not None and is_run_dir(run_dir):
        saved = read_run(run_dir)
        if saved.get("kind") == "finetune" and saved.get("task"):
            return str(saved["task"])
    return None


def task_of_checkpoint(checkpoint: Path, config_json: dict, architecture: str) -> FinetuneTask | None:
    """The task whose model and transformers keys the export uses (None: a pre-training checkpoint).

    Two tasks may share an architecture (classification and any regression task a user adds both
    export a BertForSequenceClassification), so the recorded task decides, never the architecture.
    Only a checkpoint that records no task (one copied out of a run written before checkpoints
    recorded it, or a hand-made folder) falls back to the first task exporting its architecture.
    """
    name = recorded_task_name(checkpoint, config_json)
    if name is None:
        return None if architecture == PRETRAINING_ARCHITECTURE else task_for_architecture(architecture)
    task = get_task(name)
    if task.architecture != architecture:
        raise PrefineError(
            f"{checkpoint / CONFIG_FILE}: architecture {architecture} is not the {task.architecture} that --task {task.name} "
            "builds; the checkpoint does not match its run"
        )
    return task


def _checked_model(
    task: FinetuneTask | None, config: BertConfig, config_json: dict, weights: dict[str, torch.Tensor], source: Path
) -> torch.nn.Module:
    architecture = task.architecture if task is not None else PRETRAINING_ARCHITECTURE
    if task is None:
        model: torch.nn.Module = BertForPreTraining(config)
    else:
        model = task.build_model(config, config_json)
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as error:  # shape mismatches, which strict=False does not forgive
        detail = " ".join(str(error).split("\n\t")[1:2]).strip() or str(error).splitlines()[0]
        raise PrefineError(f"checkpoint {source} does not match its config.json: {detail}") from None
    if missing or unexpected:
        problem = f"lacks {missing[0]}" if missing else f"has the unexpected weight {unexpected[0]}"
        raise PrefineError(f"checkpoint {source} {problem} for {architecture}; it does not match its config.json")
    return model


def hf_config_dict(config: BertConfig, architecture: str, config_json: dict, task: FinetuneTask | None) -> dict:
    """The config.json transformers reads: every BertConfig field plus the architecture and the task's keys (labels)."""
    values = {
        "model_type": "bert",
        "architectures": [architecture],
        **bert_config_fields(config),
        "position_embedding_type": "absolute",
        "tie_word_embeddings": config.tie_word_embeddings,  # tied: the MLM decoder is the word-embedding table
        "dtype": "float32",  # transformers >= 5
        "torch_dtype": "float32",  # transformers 4
    }
    if task is not None:
        values.update(task.hf_config(config_json))
    if "id2label" in values:
        values["num_labels"] = len(values["id2label"])
    return values


def _run_tokenizer(tokenizer_dir: Path, vocab_size: int) -> Tokenizer:
    """The run's tokenizer, refused when it has pieces the model has no embedding rows for."""
    tokenizer = load_tokenizer(tokenizer_dir)
    if tokenizer.get_vocab_size() > vocab_size:
        raise PrefineError(
            f"tokenizer {tokenizer_dir} has {tokenizer.get_vocab_size()} tokens but the model embeds {vocab_size}; "
            "restore the run's own tokenizer"
        )
    return tokenizer


def _check_not_a_run_folder(out_dir: Path, run_or_checkpoint: Path) -> None:
    if out_dir.resolve() == Path(run_or_checkpoint).resolve() or (out_dir / RUN_FILE).exists():
        raise PrefineError(f"--out {out_dir} is a prefine run folder; export into a new folder")


def export_hf(run_or_checkpoint: Path, out_dir: Path) -> Path:
    """Write a transformers-loadable folder (config.json, model.safetensors, tokenizer files) to `out_dir`."""
    checkpoint, tokenizer_dir = _locate(run_or_checkpoint)
    config_json = load_model_config(checkpoint)
    objective = objective_of_checkpoint(config_json)
    if objective is not None:
        # A pre-training run: its objective may have a layout of its own (ELECTRA's two folders); None
        # leaves it to the plain BERT export below.
        exported = _export_pretraining(objective, run_or_checkpoint, checkpoint, tokenizer_dir, config_json, Path(out_dir))
        if exported is not None:
            return exported
    architecture = _architecture(config_json, checkpoint)
    config = config_from_dict(config_json, str(checkpoint / CONFIG_FILE))
    if config.embedding_size:
        raise PrefineError(
            f"{checkpoint} projects {config.embedding_size}-wide embeddings up to {config.hidden_size} (it was fine-tuned from an "
            "ELECTRA-Small-style encoder), which transformers' BERT classes cannot hold; use it with prefine evaluate, predict or serve"
        )
    weights = load_weights(checkpoint)
    task = task_of_checkpoint(checkpoint, config_json, architecture)
    model = _checked_model(task, config, config_json, weights, checkpoint)
    tokenizer = _run_tokenizer(tokenizer_dir, config.vocab_size)

    out_dir = Path(out_dir)
    _check_not_a_run_folder(out_dir, run_or_checkpoint)
    custom = task.hf_export(model, config, config_json) if task is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    if custom is not None:  # a task with its own transformers layout (an EncoderDecoderModel)
        tensors, json_files = custom.tensors, custom.json_files
    else:
        # float32 whatever the training precision: the dtype every transformers user can run.
        tensors = {name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in model.state_dict().items()}
        if DECODER_WEIGHT in tensors:
            tensors[DECODER_BIAS] = tensors[MLM_BIAS].clone()
        json_files = {CONFIG_FILE: hf_config_dict(config, architecture, config_json, task)}
    save_file(tensors, out_dir / WEIGHTS_FILE, metadata={"format": "pt"})
    give_default_permissions(out_dir / WEIGHTS_FILE)
    for name, values in json_files.items():
        (out_dir / name).write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    save_tokenizer(tokenizer, out_dir, model_max_length=config.max_position_embeddings)
    return out_dir


@dataclass
class OnnxExport:
    """What `export_onnx` wrote, and how closely ONNX Runtime reproduced prefine on the check batches."""

    out_dir: Path
    outputs: tuple[str, ...]
    max_difference: float


def export_onnx(run_or_checkpoint: Path, out_dir: Path) -> OnnxExport:
    """Write model.onnx, the tokenizer files and config.json (with the task's labels) to `out_dir`, checked in ONNX Runtime."""
    checkpoint, tokenizer_dir = _locate(run_or_checkpoint)
    config_json = load_model_config(checkpoint)
    if objective_of_checkpoint(config_json) is not None:
        raise PrefineError(
            f"{run_or_checkpoint} is a pre-training run; --format onnx exports fine-tuned runs (classification, regression, NER, QA). "
            "Use --format hf for a pre-trained encoder"
        )
    architecture = _architecture(config_json, checkpoint)
    task = task_of_checkpoint(checkpoint, config_json, architecture)
    if task is None:
        raise PrefineError(f"{checkpoint} records no fine-tuning task; --format onnx exports fine-tuned runs. Use --format hf")
    outputs = task.onnx_outputs()  # a task that has no single forward refuses here, in one line
    out_dir = Path(out_dir)
    _check_not_a_run_folder(out_dir, run_or_checkpoint)
    require_onnx()
    config = config_from_dict(config_json, str(checkpoint / CONFIG_FILE))
    model = _checked_model(task, config, config_json, load_weights(checkpoint), checkpoint)
    tokenizer = _run_tokenizer(tokenizer_dir, config.vocab_size)
    # Built in a temporary folder beside --out (same file system, so the move is a rename): a
    # failed trace or parity check leaves nothing behind.
    existing = out_dir.resolve()
    while not existing.exists():
        existing = existing.parent
    _remove_dead_stagings(existing, out_dir.name)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=existing))
    try:
        batches = example_batches(config.vocab_size, config.type_vocab_size, config.max_position_embeddings)
        worst = write_onnx(model, staging / MODEL_FILE, outputs, batches)
        values = {
            "model_type": "bert",
            "architectures": [architecture],
            "task": task.name,
            "onnx_opset": ONNX_OPSET,
            "onnx_inputs": ["input_ids", "attention_mask", "token_type_ids"],
            "onnx_outputs": list(outputs),
            **bert_config_fields(config),
            **task.hf_config(config_json),
        }
        if "id2label" in values:
            values["num_labels"] = len(values["id2label"])
        (staging / CONFIG_FILE).write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        save_tokenizer(tokenizer, staging, model_max_length=config.max_position_embeddings)
        for path in staging.iterdir():
            give_default_permissions(path)
        if out_dir.exists():
            for path in staging.iterdir():
                os.replace(path, out_dir / path.name)
            staging.rmdir()
        else:
            give_default_permissions(staging)  # mkdtemp's folder is private; an export is not
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return OnnxExport(out_dir, outputs, worst)


def _remove_dead_stagings(parent: Path, name: str) -> None:
    """Staging folders an earlier export to the same --out left when it was killed (kill -9 skips its cleanup).

    Each carries its process id, so a concurrent export's folder, whose process is alive, is kept.
    """
    for path in parent.glob(f".{name}.partial-*-*"):
        pid = path.name.removeprefix(f".{name}.partial-").split("-", 1)[0]
        if pid.isdigit() and process_start_time(int(pid)) is None:
            shutil.rmtree(path, ignore_errors=True)


def _export_pretraining(
    objective: PretrainingObjective, run_or_checkpoint: Path, checkpoint: Path, tokenizer_dir: Path, config_json: dict, out_dir: Path
) -> Path | None:
    """The objective's own Hugging Face export of a pre-training run, after the checks every export makes."""
    tokenizer = _run_tokenizer(tokenizer_dir, config_json.get("vocab_size", 0))
    _check_not_a_run_folder(out_dir, run_or_checkpoint)
    return objective.export_hf(checkpoint, tokenizer, config_json, out_dir)


@dataclass
class ExportConfig:
    run: str = option("", "a prefine run (its best, else latest checkpoint) or a checkpoint folder", positional=True)
    format: Literal["hf", "onnx"] = option(
        "hf", "output format: hf (transformers' from_pretrained folder) or onnx (model.onnx for ONNX Runtime; the onnx extra)"
    )
    out: str = option("", "folder to write (created if missing)")


def add_export_command(subparsers: argparse._SubParsersAction) -> None:
    """Register `prefine export RUN --format hf|onnx --out DIR`."""
    parser = subparsers.add_parser("export", help="write a run's model in Hugging Face transformers or ONNX format")
    add_dataclass_arguments(parser, ExportConfig)
    parser.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    config = from_args(ExportConfig, args)
    if not config.out:
        raise PrefineError("pass --out FOLDER to write the exported model into")
    if config.format == "onnx":
        exported = export_onnx(Path(config.run), Path(config.out))
        print(
            f"exported to {exported.out_dir}/{MODEL_FILE} (opset {ONNX_OPSET}; outputs {', '.join(exported.outputs)}; ONNX Runtime "
            f"matches prefine within {exported.max_difference:.1e}) with the tokenizer files; run it with onnxruntime.InferenceSession"
        )
        return 0
    out_dir = export_hf(Path(config.run), Path(config.out))
    print(f"exported to {out_dir}; load it with transformers' AutoModel*.from_pretrained('{out_dir}') and AutoTokenizer")
    return 0
