"""Task data files: stray carriage returns, files without a header line (--columns) and nested JSON fields (dotted paths)."""

from __future__ import annotations

import json

import pytest

from prefine.errors import PrefineError
from prefine.tasks.task_data import read_records


def test_a_stray_carriage_return_inside_a_tsv_field_is_text(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(b"sentence\tlabel\ngreat film\rloved it\t1\ndull\t0\r\n")
    table = read_records(path)
    assert table.columns == {"sentence": ["great film\rloved it", "dull"], "label": ["1", "0"]}
    assert table.line_numbers.tolist() == [2, 3]


def test_a_stray_carriage_return_inside_a_csv_field_is_a_space(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"sentence,label\ngreat film\rloved it,1\n")
    assert read_records(path).columns == {"sentence": ["great film loved it"], "label": ["1"]}


# ---------------------------------------------------------------------------------------------
# Files without a header line (--columns)


def test_a_headerless_tsv_is_read_with_the_given_column_names(tmp_path):
    # GLUE CoLA's train.tsv: source, label, the original acceptability mark (empty or *), sentence.
    path = tmp_path / "train.tsv"
    path.write_text('gj04\t1\t\tOur friends won\'t buy this analysis.\ngj04\t0\t*\tThey drank the "pub".\n', encoding="utf-8")
    table = read_records(path, column_names=["source", "label", "mark", "sentence"])
    assert table.columns == {
        "source": ["gj04", "gj04"],
        "label": ["1", "0"],
        "mark": ["", "*"],
        "sentence": ["Our friends won't buy this analysis.", 'They drank the "pub".'],
    }
    assert table.line_numbers.tolist() == [1, 2]  # the first line is a record, not a header
    # Without the names the first record would be taken for a header: the columns tell it is one.
    assert read_records(path).column_names == ["gj04", "1", "", "Our friends won't buy this analysis."]


def test_a_headerless_csv_is_read_with_the_given_column_names(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('"great, really",1\ndull,0\n', encoding="utf-8")
    assert read_records(path, column_names=["text", "label"]).columns == {"text": ["great, really", "dull"], "label": ["1", "0"]}


def test_headerless_reading_errors_name_the_file_the_line_and_the_fix(tmp_path):
    path = tmp_path / "cola.tsv"
    path.write_text("gj04\t1\t\tfine\ngj04\t0\tbroken\n", encoding="utf-8")
    with pytest.raises(
        PrefineError, match=r"cola.tsv line 2 has 3 columns but --columns names 4 \(source,label,mark,sentence\); name every column"
    ):
        read_records(path, column_names=["source", "label", "mark", "sentence"])
    header = tmp_path / "sst2.tsv"
    header.write_text("sentence\tlabel\ngood\t1\n", encoding="utf-8")
    with pytest.raises(PrefineError, match="sst2.tsv starts with a header line .*drop --columns"):
        read_records(header, column_names=["sentence", "label"])
    json_file = tmp_path / "data.jsonl"
    json_file.write_text('{"text": "a", "label": 1}\n', encoding="utf-8")
    with pytest.raises(PrefineError, match="data.jsonl is JSON, whose records name their own fields; drop --columns"):
        read_records(json_file, column_names=["sentence", "label"])
    # A dev split prefine carved out of a headerless file is JSON with exactly the --columns names.
    assert list(read_records(json_file, column_names=["text", "label"]).columns) == ["text", "label"]
    with pytest.raises(PrefineError, match="names label more than once"):
        read_records(path, column_names=["label", "label", "mark", "sentence"])
    with pytest.raises(PrefineError, match="has an empty name"):
        read_records(path, column_names=["source", "", "mark", "sentence"])


# ---------------------------------------------------------------------------------------------
# Nested JSON fields (dotted paths)


def test_nested_json_fields_are_columns_named_by_their_dotted_path(tmp_path):
    # KLUE-STS: a JSON array whose labels are an object.
    path = tmp_path / "klue-sts-v1.1_dev.json"
    records = [
        {
            "guid": "klue-sts-v1_dev_00000",
            "sentence1": "a",
            "sentence2": "b",
            "labels": {"label": 3.7, "real-label": 3.714, "binary-label": 1},
        },
        {
            "guid": "klue-sts-v1_dev_00001",
            "sentence1": "c",
            "sentence2": "d",
            "labels": {"label": 0.0, "real-label": 0.0, "binary-label": 0},
        },
    ]
    path.write_text(json.dumps(records, ensure_ascii=False, indent=2), encoding="utf-8")
    table = read_records(path)
    assert table.column("labels.real-label") == ["3.714", "0.0"]
    assert table.column("labels.binary-label") == ["1", "0"]
    assert json.loads(table.column("labels")[0] or "") == records[0]["labels"]  # the object itself stays, as JSON
    with pytest.raises(
        PrefineError,
        match=r"'labels' has no field 'real_label' \(its fields: label, real-label, binary-label\); fix the path given with --label-column",
    ):
        table.column("labels.real_label", "label column", "--label-column")
    with pytest.raises(PrefineError, match="'guid' holds no JSON objects, so 'guid.x' names nothing"):
        table.column("guid.x", "label column", "--label-column")


def test_a_record_without_the_nested_field_names_its_position(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a", "labels": {"score": 1.5}}\n{"text": "b", "labels": {}}\n', encoding="utf-8")
    table = read_records(path)
    assert table.column("labels.score") == ["1.5", None]
    with pytest.raises(PrefineError, match="data.jsonl line 2 has no 'labels.score' value"):
        table.text_column("labels.score")


def test_a_literal_dotted_key_wins_over_the_path(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": {"b": "nested"}, "a.b": "literal"}\n', encoding="utf-8")
    assert read_records(path).column("a.b") == ["literal"]
