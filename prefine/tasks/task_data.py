"""Labelled task data in: TSV, CSV, JSONL files or a Hugging Face dataset, read into columns.

Fine-tuning sets are small next to a pre-training corpus, so they are read whole, column by
column (a list per column, not a dict per row: 400k MNLI rows stay compact). Every record keeps
the line of the file it came from, so an error about a record ("unseen label", "missing text")
can say where to look.

Formats are chosen by suffix (`.tsv`, `.csv`, `.jsonl` / `.ndjson` / `.json`, each optionally
`.gz`). TSV is read with quoting off, because GLUE-style TSVs such as SST-2 contain raw quote
characters that a quoting reader would treat as the start of a multi-line field. CSV and TSV
need a header line: the column names are how text and label columns are found.

Anything that is not an existing file is a Hugging Face dataset: a folder written by
`save_to_disk`, or a Hub name with an optional config and split, `name[:config][:split]`, for
example `nyu-mll/glue:sst2:validation`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prefine.corpus.datasets_source import import_datasets, load_dataset_source
from prefine.corpus.readers import delimited_rows, iter_file_lines, unquote_tsv_field
from prefine.errors import PrefineError
from prefine.jsonio import iter_jsonl

_FILE_FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass
class RecordTable:
    """Records of one source, column-oriented; `line_numbers[i]` locates record i for messages."""

    source: str
    columns: dict[str, list[str | None]]  # None where a JSONL record lacks the field
    line_numbers: np.ndarray
    location_unit: str = "line"  # "line" in files, "row" in datasets

    def __len__(self) -> int:
        return len(self.line_numbers)

    def __iter__(self) -> Iterator[dict[str, str | None]]:
        names = list(self.columns)
        for values in zip(*self.columns.values()):
            yield dict(zip(names, values))

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    def where(self, index: int) -> str:
        return f"{self.location_unit} {int(self.line_numbers[index])}"

    def column(self, name: str, role: str = "column", flag: str = "") -> list[str | None]:
        """The values of `name`; a missing column names the ones that exist (and the flag to pick one)."""
        if name not in self.columns:
            hint = f"; choose one with {flag}" if flag else ""
            raise PrefineError(f"{self.source} has no {role} '{name}'; available columns: {', '.join(self.columns) or 'none'}{hint}")
        return self.columns[name]

    def text_column(self, name: str, role: str = "column", flag: str = "") -> list[str]:
        """`column`, but every record must have a value (a missing one is an error naming its line)."""
        texts: list[str] = []
        for index, value in enumerate(self.column(name, role, flag)):
            if value is None:
                raise PrefineError(f"{self.source} {self.where(index)} has no '{name}' value; every record needs one")
            texts.append(value)
        return texts


def _value_as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Files


def _file_format(path: Path) -> str:
    suffix = path.suffixes[-2].lower() if path.suffix.lower() == ".gz" and len(path.suffixes) > 1 else path.suffix.lower()
    if suffix not in _FILE_FORMATS:
        raise PrefineError(f"{path}: cannot tell the format from the suffix '{suffix or '(none)'}'; name the file .tsv, .csv or .jsonl")
    return _FILE_FORMATS[suffix]


def _read_delimited(path: Path, delimiter: str) -> RecordTable:
    is_tsv = delimiter == "\t"
    rows = delimited_rows(path, delimiter)
    kind = "TSV" if is_tsv else "CSV"
    header = next(rows, (0, None))[1]
    if header is None:
        raise PrefineError(f"{path} is empty; a {kind} file needs a header line and at least one record")
    if is_tsv:
        header = [unquote_tsv_field(name) for name in header]
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        raise PrefineError(f"{path} has repeated column names in its header ({', '.join(header)}); give every column its own name")
    values: list[list[str | None]] = [[] for _ in header]
    line_numbers: list[int] = []
    for number, row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise PrefineError(
                f"{path} line {number} has {len(row)} columns but the header has {len(header)} ({', '.join(header)}); "
                f"fix that row (a {kind} field may not contain {'a tab' if is_tsv else 'an unquoted comma'})"
            )
        for column, value in zip(values, row):
            column.append(unquote_tsv_field(value) if is_tsv else value)
        line_numbers.append(number)
    return RecordTable(str(path), dict(zip(header, values)), np.asarray(line_numbers, dtype=np.int64))


def _read_jsonl(path: Path) -> RecordTable:
    lines = iter_file_lines(path)
    first = next(((number, line) for number, line in lines if line.strip()), None)
    if first is not None and first[1].lstrip().startswith("["):
        return _read_json_array(path)  # a whole-file JSON array (the other layout .json files use)
    numbered = list(iter_jsonl(itertools.chain([first] if first else [], lines), path))
    return _table_from_records(str(path), [record for _, record in numbered], [number for number, _ in numbered], "line")


def _read_json_array(path: Path) -> RecordTable:
    try:
        records = json.loads(b"".join(line.encode("utf-8") + b"\n" for _, line in iter_file_lines(path)))
    except json.JSONDecodeError as error:
        raise PrefineError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}); fix it or write one object per line (JSONL)"
        ) from None
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise PrefineError(f"{path} must be a JSON array of objects or one JSON object per line")
    return _table_from_records(str(path), records, list(range(1, len(records) + 1)), "record")


def _table_from_records(source: str, records: list[dict], line_numbers: list[int], unit: str) -> RecordTable:
    names: dict[str, None] = {}  # ordered union of the keys: later records may add fields
    for record in records:
        names.update(dict.fromkeys(record))
    columns = {name: [_value_as_text(record.get(name)) for record in records] for name in names}
    return RecordTable(source, columns, np.asarray(line_numbers, dtype=np.int64), unit)


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets


def _read_dataset(name: str, default_split: str) -> RecordTable:
    datasets = import_datasets()
    dataset, source = load_dataset_source(name, default_split, streaming=False)
    columns: dict[str, list[str | None]] = {}
    for column in dataset.column_names:
        feature = dataset.features.get(column)
        raw = dataset[column]
        if isinstance(feature, datasets.ClassLabel):
            # Class names read better in predictions than the integers the dataset stores.
            columns[column] = [
                feature.int2str(value) if isinstance(value, int) and 0 <= value < feature.num_classes else _value_as_text(value)
                for value in raw
            ]
        else:
            columns[column] = [_value_as_text(value) for value in raw]
    return RecordTable(source, columns, np.arange(1, dataset.num_rows + 1, dtype=np.int64), "row")


# ---------------------------------------------------------------------------------------------
# Public API


def _looks_like_file_path(name: str) -> bool:
    path = Path(name)
    return path.suffix.lower() in (*_FILE_FORMATS, ".gz") or name.startswith((".", "/", "~"))


def read_records(path_or_name: str | Path, split: str | None = None) -> RecordTable:
    """Read a TSV/CSV/JSONL file, a saved dataset folder or a Hub dataset into a `RecordTable`.

    `split` is the dataset split used when the name does not say (default "train").
    """
    name = str(path_or_name)
    path = Path(name).expanduser()
    if path.is_file():
        kind = _file_format(path)
        table = _read_jsonl(path) if kind == "jsonl" else _read_delimited(path, "\t" if kind == "tsv" else ",")
        if not len(table):
            raise PrefineError(f"{path} holds no records; point at a file with data")
        return table
    if not path.is_dir() and _looks_like_file_path(name):
        raise PrefineError(f"{path} does not exist; check the path")
    table = _read_dataset(name, split or "train")
    if not len(table):
        raise PrefineError(f"{table.source} holds no records; choose another split")
    return table
