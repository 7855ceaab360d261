"""Writing predictions, shared by every task: one JSON line per input, or TSV rows under a header, in input order.

`prefine predict` and `prefine generate` hand a task's predictor an output stream and a format;
the task decides what one prediction holds, and this module how it is written: JSON lines keep
texts verbatim (non-ASCII as is), TSV cells lose the tabs and line breaks that would shift or split
a row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

from prefine.errors import PrefineError

PREDICTION_FORMATS = ("jsonl", "tsv")


def check_format(format: str) -> None:
    if format not in PREDICTION_FORMATS:
        raise PrefineError(f"unknown prediction format '{format}'; use {' or '.join(PREDICTION_FORMATS)}")


def tsv_cell(text: str) -> str:
    # Tabs and line breaks inside a text would shift or split the row; JSONL keeps them verbatim.
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def write_json_line(output: TextIO, record: dict[str, Any]) -> None:
    output.write(json.dumps(record, ensure_ascii=False) + "\n")


class PredictionWriter:
    """Writes one prediction a line in `format`: its JSON record, or its TSV cells under `tsv_header` (written first)."""

    def __init__(self, output: TextIO, format: str, tsv_header: Sequence[str]):
        check_format(format)
        self.output = output
        self.format = format
        if format == "tsv":
            output.write("\t".join(tsv_header) + "\n")

    def write(self, record: dict[str, Any], tsv_cells: Sequence[str]) -> None:
        """`record` for JSONL; `tsv_cells` (texts are cleaned here, numbers come formatted) for TSV."""
        if self.format == "jsonl":
            write_json_line(self.output, record)
        else:
            self.output.write("\t".join(tsv_cell(cell) for cell in tsv_cells) + "\n")
