"""The package's one JSON-object reader and one JSONL reader: what they return, and errors that name the file, the line and the fix."""

from __future__ import annotations

import gzip

import pytest

from prefine.corpus.readers import iter_file_lines
from prefine.errors import PrefineError
from prefine.jsonio import iter_jsonl, read_json_object


def test_reads_an_object_with_or_without_a_byte_order_mark(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 128, "name": "b\u00e9rt"}', encoding="utf-8")
    assert read_json_object(path, fix="re-download it") == {"hidden_size": 128, "name": "b\u00e9rt"}
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": 1}')
    assert read_json_object(path, fix="re-download it") == {"a": 1}


def test_invalid_json_names_the_file_the_line_and_the_fix(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}\n', encoding="utf-8")
    with pytest.raises(PrefineError) as raised:
        read_json_object(path, fix="re-download the model")
    message = str(raised.value)
    assert message.startswith(f"{path} is not valid JSON (Expecting value at line 4, column 1)")
    assert message.endswith("; re-download the model")


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "array"), ('"text"', "string"), ("3", "number"), ("null", "null")])
def test_json_that_is_not_an_object_is_refused_by_its_kind(tmp_path, text, kind):
    path = tmp_path / "run.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PrefineError, match=rf"run.json must hold a JSON object, not a JSON {kind}; restore it$"):
        read_json_object(path, fix="restore it")


def test_a_missing_file_says_so_or_is_empty_when_optional(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(PrefineError, match=r"absent.json not found; re-download the model$"):
        read_json_object(path, fix="re-download the model")
    with pytest.raises(PrefineError, match=r"^this folder is not a run$"):
        read_json_object(path, fix="unused", missing="this folder is not a run")
    assert read_json_object(path, fix="unused", missing_ok=True) == {}


def test_a_file_that_is_not_utf8_or_not_a_file_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"name": "caf\u00e9"}'.encode("latin-1"))
    with pytest.raises(PrefineError, match=r"latin1.json is not UTF-8 text \(byte 0xe9 at offset 13\); fix it"):
        read_json_object(path, fix="fix it")
    with pytest.raises(PrefineError, match=r"cannot be read .*; fix it"):
        read_json_object(tmp_path, fix="fix it")


def test_jsonl_yields_line_numbers_and_skips_blank_lines(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "a"}\n\n  \n{"text": "b"}\r\n', encoding="utf-8")
    assert list(iter_jsonl(path)) == [(1, {"text": "a"}), (4, {"text": "b"})]


def test_jsonl_reads_pairs_from_another_line_reader(tmp_path):
    path = tmp_path / "data.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write('{"text": "a"}\n{"text": "b"}\n')
    assert list(iter_jsonl(iter_file_lines(path), path)) == [(1, {"text": "a"}), (2, {"text": "b"})]


def test_a_bad_jsonl_line_is_named_by_its_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b", oops}\n{"text": "c"}\n', encoding="utf-8")
    records = iter_jsonl(path, each_line="one object with token and tag lists")
    assert next(records) == (1, {"text": "a"})
    with pytest.raises(PrefineError) as raised:
        next(records)
    message = str(raised.value)
    assert message.startswith(f"{path} line 3 is not JSON (Expecting property name enclosed in double quotes at column 15)")
    assert message.endswith("; each line must be one object with token and tag lists")


def test_a_jsonl_line_that_is_not_an_object_is_refused(tmp_path):
    path = tmp_path / "numbers.jsonl"
    path.write_text('{"text": "a"}\n42\n', encoding="utf-8")
    with pytest.raises(PrefineError, match=r"numbers.jsonl line 2 is a JSON number, not an object; each line must be one JSON object$"):
        list(iter_jsonl(path))


def test_a_json_array_file_read_as_jsonl_gets_the_conversion_hint(tmp_path):
    one_line = tmp_path / "one_line.json"
    one_line.write_text('[{"text": "a"}, {"text": "b"}]\n', encoding="utf-8")
    with pytest.raises(PrefineError, match=r"line 1 is a JSON array, not an object; .*jq -c '\.\[\]'"):
        list(iter_jsonl(one_line))
    spread = tmp_path / "spread.json"
    spread.write_text('[\n  {"text": "a"}\n]\n', encoding="utf-8")
    with pytest.raises(PrefineError, match=r"line 1 is not JSON \(.*\) \(the file looks like one JSON array; convert an array file"):
        list(iter_jsonl(spread))


def test_jsonl_names_the_source_it_is_given(tmp_path):
    lines = [(7, '{"a": 1}'), (9, "nope")]
    with pytest.raises(PrefineError, match=r"^upload line 9 is not JSON"):
        list(iter_jsonl(lines, "upload"))


def test_a_missing_jsonl_file_is_an_error(tmp_path):
    with pytest.raises(PrefineError, match=r"absent.jsonl not found"):
        list(iter_jsonl(tmp_path / "absent.jsonl"))
