"""A Hugging Face model folder on disk: which files make one, reading its weights safely, and what an export writes.

The lowest layer of `prefine.interop`: both the BERT importer (`huggingface`) and the ELECTRA
importer (`electra`) read folders through it, so neither needs the other for that; and tasks
describe a layout of their own (`HFExport`) here, below both the tasks and the export command.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from prefine.checkpoint import RUN_FILE
from prefine.errors import PrefineError
from prefine.jsonio import read_json_object

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_FILE = "pytorch_model.bin"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS_FILE, SAFETENSORS_INDEX, PYTORCH_FILE, PYTORCH_INDEX)


def is_hf_model_dir(path: Path) -> bool:
    """True for a folder with config.json and Hugging Face weights that is not a prefine run."""
    path = Path(path)
    if not (path / CONFIG_FILE).is_file() or (path / RUN_FILE).exists():
        return False
    return any((path / name).is_file() for name in WEIGHT_FILES)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except (SafetensorError, OSError) as error:
        raise PrefineError(f"{path} is unreadable ({error}); re-download the model") from None


def _load_pytorch_bin(path: Path) -> dict[str, torch.Tensor]:
    # weights_only refuses to run code hidden in the pickle: a .bin from the internet is a program.
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0]
        raise PrefineError(
            f"{path} needs to unpickle more than tensors ({first_line}); prefine never runs code from a checkpoint. "
            "Convert it to model.safetensors with a tool you trust"
        ) from None
    except (RuntimeError, OSError, EOFError) as error:
        raise PrefineError(f"{path} is unreadable ({error}); re-download the model") from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise PrefineError(f"{path} is not a state dict of tensors; save the model with transformers' save_pretrained")
    return state


def _load_sharded(index_path: Path, load_shard) -> dict[str, torch.Tensor]:
    weight_map = read_json_object(index_path, fix="re-download the model").get("weight_map")
    if not isinstance(weight_map, dict):
        raise PrefineError(f"{index_path} has no valid weight_map; re-download the model")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise PrefineError(f"{index_path} lists the shard {shard}, which is missing; re-download the model")
        state.update(load_shard(shard_path))
    return state


def load_hf_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All weights of a Hugging Face folder; safetensors preferred, a .bin read without unpickling code."""
    directory = Path(directory)
    if (directory / SAFETENSORS_FILE).is_file():
        return _load_safetensors(directory / SAFETENSORS_FILE)
    if (directory / SAFETENSORS_INDEX).is_file():
        return _load_sharded(directory / SAFETENSORS_INDEX, _load_safetensors)
    if (directory / PYTORCH_FILE).is_file():
        return _load_pytorch_bin(directory / PYTORCH_FILE)
    if (directory / PYTORCH_INDEX).is_file():
        return _load_sharded(directory / PYTORCH_INDEX, _load_pytorch_bin)
    raise PrefineError(f"{directory} holds no {SAFETENSORS_FILE} or {PYTORCH_FILE}; point at a Hugging Face model folder with its weights")


@dataclass
class HFExport:
    """What `prefine export` writes for a task with its own transformers layout (see FinetuneTask.hf_export)."""

    tensors: dict[str, torch.Tensor]  # transformers' parameter names -> weights
    json_files: dict[str, dict[str, Any]]  # file name -> content, config.json included
