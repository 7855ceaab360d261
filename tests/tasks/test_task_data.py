"""Task data files: a stray carriage return inside a field is text, not a csv-module error."""

from __future__ import annotations

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
