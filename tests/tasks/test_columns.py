"""Column picking, shared by every table-reading task: a named column is checked, a detected one is announced once.

A comparison reads the same files for every fine-tune; classification and generation both pick
their columns through `prefine.tasks.columns`, so both announce a detected choice the first time only.
"""

from __future__ import annotations

import pytest

from prefine.errors import PrefineError
from prefine.tasks.classification import ClassificationDataConfig, read_classification_inputs
from prefine.tasks.columns import ColumnPicker, find_column
from prefine.tasks.generation import GenerationDataConfig, read_pairs
from prefine.tasks.task_data import read_records


def test_detected_columns_are_announced_once_by_every_task(tmp_path, capsys):
    (tmp_path / "reviews.tsv").write_text("review\tsentiment\ngood film\tpos\nbad film\tneg\n", encoding="utf-8")
    (tmp_path / "pairs.jsonl").write_text('{"document": "a long text", "summary": "short"}\n', encoding="utf-8")
    for _ in range(3):
        inputs = read_classification_inputs(str(tmp_path / "reviews.tsv"), ClassificationDataConfig())
        pairs = read_pairs(str(tmp_path / "pairs.jsonl"), GenerationDataConfig(), None)
    assert (inputs.columns.text, inputs.columns.label) == ("review", "sentiment")
    assert (pairs.columns.source, pairs.columns.target) == ("document", "summary")
    err = capsys.readouterr().err
    assert err.count("reviews.tsv: using text 'review', label 'sentiment' (detected;") == 1
    assert err.count("pairs.jsonl: using target 'summary', source 'document' (detected;") == 1


def test_a_named_column_is_checked_and_an_undetectable_one_names_its_flag(tmp_path, capsys):
    (tmp_path / "data.tsv").write_text("words\tgrade\nsome text\t1\n", encoding="utf-8")
    table = read_records(str(tmp_path / "data.tsv"))
    with pytest.raises(PrefineError, match="has no label column 'stars'; available columns: words, grade; choose one with --label-column"):
        ColumnPicker(table, ("--label-column",)).pick("stars", (), "label", "--label-column")
    with pytest.raises(PrefineError, match="cannot tell which column of .* holds the text .*; choose one with --text-column"):
        ColumnPicker(table, ("--text-column",)).pick(None, ("text", "sentence"), "text", "--text-column")
    optional = ColumnPicker(table, ("--text-pair-column",))
    assert optional.pick(None, ("text_b",), "text pair", "--text-pair-column", required=False) is None
    optional.announce()
    assert capsys.readouterr().err == ""  # nothing was detected, so nothing is announced


def test_find_column_ignores_case_and_skips_columns_already_taken():
    assert find_column(("label", "score"), ["Text", "Label"]) == "Label"
    assert find_column(("text", "label"), ["Text", "Label"], exclude=("Text",)) == "Label"
    assert find_column(("summary",), ["Text"]) is None
