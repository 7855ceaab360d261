"""Labelled task data in: TSV, CSV, JSONL files or a Hugging Face dataset, read into columns.

Fine-tuning sets are small next to a pre-training corpus, so they are read whole, column by
column (a list per column, not a dict per row: 400k MNLI rows stay compact). Every record keeps
the line of the file it came from, so an error about a record ("unseen label", "missing text")
can say where to look.

Formats are chosen by suffix (`.tsv`, `.csv`, `.jsonl` / `.ndjson` / `.json`, each optionally
`.gz`). TSV is read with quoting off, because GLUE-style TSVs such as SST-2 contain raw quote
characters that a quoting reader would treat as the start of a multi-line field. CSV and TSV
files name their columns in a header line; a file without one (GLUE's CoLA train.tsv and
dev.tsv) is read with the column names given by the caller (`column_names`, the --columns
flag), and every row must then have exactly that many fields.

JSON and JSONL records may nest objects: each nested field is also a column named by its dotted
path, so KLUE-STS's `{"labels": {"real-label": 3.7}}` gives the column `labels.real-label`
(beside `labels`, the object as JSON text). Lists are kept whole, as JSON text.

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
    header_hint: str = ""  # said with a missing column when the header line looks like a record (a headerless file)
    object_columns: frozenset[str] = frozenset()  # JSON fields holding objects: never detected as text or label

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
            parent, _, field = name.rpartition(".")
            if parent and parent in self.columns:
                # A dotted path into JSON objects whose last step is wrong: name the fields that object has.
                fields = [
                    column[len(parent) + 1 :]
                    for column in self.columns
                    if column.startswith(parent + ".") and "." not in column[len(parent) + 1 :]
                ]
                if fields:
                    raise PrefineError(
                        f"{self.source}: '{parent}' has no field '{field}' (its fields: {', '.join(fields)}); "
                        f"fix the path given with {flag or 'the column name'}"
                    )
                raise PrefineError(
                    f"{self.source}: '{parent}' holds no JSON objects, so '{name}' names nothing; "
                    f"available columns: {', '.join(self.columns)}{hint}"
                )
            raise PrefineError(
                f"{self.source} has no {role} '{name}'; available columns: {', '.join(self.columns) or 'none'}{hint}{self.header_hint}"
            )
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


def _read_delimited(path: Path, delimiter: str, column_names: list[str] | None = None) -> RecordTable:
    is_tsv = delimiter == "\t"
    rows = delimited_rows(path, delimiter)
    kind = "TSV" if is_tsv else "CSV"
    if column_names is None:
        header = next(rows, (0, None))[1]
        if header is None:
            raise PrefineError(
                f"{path} is empty; a {kind} file needs a header line (or --columns naming its columns) and at least one record"
            )
        if is_tsv:
            header = [unquote_tsv_field(name) for name in header]
        header = [name.strip() for name in header]
        if len(set(header)) != len(header):
            raise PrefineError(f"{path} has repeated column names in its header ({', '.join(header)}); give every column its own name")
        widths = f"the header has {len(header)} ({', '.join(header)})"
    else:
        header = check_column_names(column_names)
        widths = f"--columns names {len(header)} ({','.join(header)})"
    values: list[list[str | None]] = [[] for _ in header]
    line_numbers: list[int] = []
    for number, row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if column_names is not None and not line_numbers and [field.strip() for field in row] == header:
            raise PrefineError(f"{path} starts with a header line ({', '.join(header)}); drop --columns, which is for files without one")
        if len(row) != len(header):
            fix = (
                "fix that row"
                if column_names is None
                else f"name every column of the file with --columns, in order (line {number} reads: {_shorten(row)})"
            )
            raise PrefineError(
                f"{path} line {number} has {len(row)} columns but {widths}; {fix} "
                f"(a {kind} field may not contain {'a tab' if is_tsv else 'an unquoted comma'})"
            )
        for column, value in zip(values, row):
            column.append(unquote_tsv_field(value) if is_tsv else value)
        line_numbers.append(number)
    hint = ""
    if column_names is None and any(not name or _as_float(name) is not None for name in header):
        # GLUE CoLA's first record (gj04, 1, "", sentence) read as a header: say what is likely wrong.
        hint = (
            "; its first line looks like a record, not a header (an empty or numeric column name): "
            "a file without a header line needs --columns"
        )
    return RecordTable(str(path), dict(zip(header, values)), np.asarray(line_numbers, dtype=np.int64), header_hint=hint)


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _shorten(row: list[str], width: int = 80) -> str:
    text = " | ".join(row)
    return text if len(text) <= width else text[: width - 3] + "..."


def check_column_names(names: list[str]) -> list[str]:
    """The column names of a headerless file, stripped; empty or repeated names are an error naming --columns."""
    stripped = [name.strip() for name in names]
    if not stripped or any(not name for name in stripped):
        raise PrefineError(
            f"--columns {','.join(names)} has an empty name; give one name per column, e.g. --columns source,label,mark,sentence"
        )
    repeated = sorted({name for name in stripped if stripped.count(name) > 1})
    if repeated:
        raise PrefineError(f"--columns names {', '.join(repeated)} more than once; give every column its own name")
    return stripped


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


def _flatten(record: dict, prefix: str = "") -> dict[str, Any]:
    """The record's fields plus, for every nested object, its fields under dotted names ("labels.real-label")."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = prefix + str(key)
        flat[name] = value
        if isinstance(value, dict):
            for nested, nested_value in _flatten(value, name + ".").items():
                flat.setdefault(nested, nested_value)  # a literal "a.b" key in the record wins over the path
    return flat


def _table_from_records(source: str, records: list[dict], line_numbers: list[int], unit: str) -> RecordTable:
    flat = [_flatten(record) for record in records]
    names: dict[str, None] = {}  # ordered union of the keys: later records may add fields
    for record in flat:
        names.update(dict.fromkeys(record))
    columns = {name: [_value_as_text(record.get(name)) for record in flat] for name in names}
    objects = frozenset(name for name in names if any(isinstance(record.get(name), dict) for record in flat))
    return RecordTable(source, columns, np.asarray(line_numbers, dtype=np.int64), unit, object_columns=objects)


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


def read_records(path_or_name: str | Path, split: str | None = None, column_names: list[str] | None = None) -> RecordTable:
    """Read a TSV/CSV/JSONL file, a saved dataset folder or a Hub dataset into a `RecordTable`.

    `split` is the dataset split used when the name does not say (default "train").
    `column_names` reads a TSV/CSV file that has no header line: its columns, in order (--columns);
    any other source given with it is an error, since its columns are named already.
    """
    name = str(path_or_name)
    path = Path(name).expanduser()
    if path.is_file():
        kind = _file_format(path)
        table = _read_jsonl(path) if kind == "jsonl" else _read_delimited(path, "\t" if kind == "tsv" else ",", column_names)
        # JSON names its own fields. --columns on it is a mistake, unless the records carry exactly
        # those names: a dev split prefine carved out of a headerless TSV is written that way.
        if column_names is not None and kind == "jsonl" and list(table.columns) != check_column_names(column_names):
            raise PrefineError(
                f"{path} is JSON, whose records name their own fields; drop --columns (it is for TSV/CSV files without a header)"
            )
        if not len(table):
            raise PrefineError(f"{path} holds no records; point at a file with data")
        return table
    if not path.is_dir() and _looks_like_file_path(name):
        raise PrefineError(f"{path} does not exist; check the path")
    if column_names is not None:
        raise PrefineError(f"{name} is a Hugging Face dataset, whose columns are named already; drop --columns")
    table = _read_dataset(name, split or "train")
    if not len(table):
        raise PrefineError(f"{table.source} holds no records; choose another split")
    return table
