"""Hugging Face datasets as a data source, for corpora and task data alike: one syntax, one loader.

A dataset is named as a folder written by `save_to_disk`, or as a Hub name with an optional
config and split: `name`, `name:split` or `name:config:split` (e.g. `nsmc`, `glue:sst2:validation`).
Pre-training reads corpora streamed (they can be larger than memory); fine-tuning reads task
data whole (it needs every row's label). Both go through `load_dataset_source` here, so a name
that works for `prefine pretrain --corpus` works the same way for `prefine finetune --train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefine.errors import PrefineError

SAVED_DATASET_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")


def import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise PrefineError("reading a Hugging Face dataset needs the datasets extra: pip install 'prefine[datasets]'") from None
    return datasets


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / marker).is_file() for marker in SAVED_DATASET_MARKERS)


def parse_dataset_name(name: str, default_split: str) -> tuple[str, str | None, str]:
    """`name`, `name:split` or `name:config:split` -> (name, config, split)."""
    parts = name.split(":")
    if len(parts) == 1:
        return name, None, default_split
    if len(parts) == 2:
        return parts[0], None, parts[1] or default_split
    if len(parts) == 3:
        return parts[0], parts[1] or None, parts[2] or default_split
    raise PrefineError(f"'{name}' is neither a file nor a dataset name of the form name[:config][:split]; check the path")


def load_dataset_source(name: str, default_split: str, streaming: bool) -> tuple[Any, str]:
    """(dataset split, a description for messages) for a saved-dataset folder or a Hub name[:config][:split]."""
    datasets = import_datasets()
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not is_saved_dataset(folder):
            raise PrefineError(
                f"{folder} is a folder but not a dataset saved with save_to_disk (no dataset_info.json or dataset_dict.json); "
                "pass its files instead"
            )
        dataset = datasets.load_from_disk(str(folder))
        if isinstance(dataset, datasets.DatasetDict):
            if default_split not in dataset:
                raise PrefineError(
                    f"{folder} has no split '{default_split}'; available splits: {', '.join(dataset)} (choose with --dataset-split)"
                )
            dataset = dataset[default_split]
        return dataset, str(folder)
    hub_name, config_name, split = parse_dataset_name(name, default_split)
    source = f"dataset {hub_name}" + (f" ({config_name})" if config_name else "") + f" split {split}"
    try:
        return datasets.load_dataset(hub_name, config_name, split=split, streaming=streaming), source
    except Exception as error:  # datasets raises many types (network, unknown name, missing split or config)
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PrefineError(
            f"'{name}' is no file here, and loading it as a Hugging Face dataset failed ({first_line}); "
            "check the path or the name[:config][:split]"
        ) from None
