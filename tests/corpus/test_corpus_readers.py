"""Corpus readers: every format (plain and gzip), folders, globs, auto-detection, errors, streaming."""

import gzip
import inspect
import json
import logging
import os
import tracemalloc
from pathlib import Path

import pytest

from prefine.corpus import CorpusConfig, corpus_fingerprint, detect_text_format, iter_documents, iter_sentences, resolve_paths
from prefine.errors import PrefineError


def write(path: Path, text: str, compress: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def documents(path, **options) -> list[list[str]]:
    return list(iter_documents(CorpusConfig(paths=[str(path)], **options)))


LINES = "The cat sat.\nIt purred.\n\nA dog barked.\nIt ran away.\nThe end.\n"
PARAGRAPHS = "The cat sat on the mat. It purred loudly.\n\nA dog barked at night. It ran\naway quickly. The end.\n"
LINE_DOCUMENTS = "Great movie. Loved it!\nTerrible plot. Would not watch again.\n"


@pytest.mark.parametrize("compress", [False, True])
def test_plain_text_formats(tmp_path, compress):
    suffix = ".txt.gz" if compress else ".txt"
    assert documents(write(tmp_path / f"a{suffix}", LINES, compress), format="lines") == [
        ["The cat sat.", "It purred."],
        ["A dog barked.", "It ran away.", "The end."],
    ]
    assert documents(write(tmp_path / f"b{suffix}", PARAGRAPHS, compress), format="paragraphs") == [
        ["The cat sat on the mat.", "It purred loudly."],
        ["A dog barked at night.", "It ran away quickly.", "The end."],
    ]
    assert documents(write(tmp_path / f"c{suffix}", LINE_DOCUMENTS, compress), format="line-documents") == [
        ["Great movie.", "Loved it!"],
        ["Terrible plot.", "Would not watch again."],
    ]


@pytest.mark.parametrize("compress", [False, True])
def test_jsonl(tmp_path, compress, caplog):
    records = [{"id": 1, "text": "First record. Two sentences."}, {"id": 2, "text": ""}, {"id": 3, "text": "Third."}]
    path = write(tmp_path / ("r.jsonl.gz" if compress else "r.jsonl"), "\n".join(json.dumps(r) for r in records) + "\n\n", compress)
    with caplog.at_level(logging.INFO, logger="prefine.corpus"):
        assert documents(path) == [["First record.", "Two sentences."], ["Third."]]
    assert "'text'" in caplog.text  # the detected field is reported


def test_jsonl_explicit_field_and_single_string_field(tmp_path):
    path = write(tmp_path / "r.jsonl", '{"body_text": "Hello there. Bye.", "n": 3}\n')
    assert documents(path) == [["Hello there.", "Bye."]]  # the only string field is the obvious choice
    path = write(tmp_path / "s.jsonl", '{"a": "Alpha.", "b": "Beta."}\n')
    assert documents(path, text_field="b") == [["Beta."]]
    with pytest.raises(PrefineError, match=r"--text-field.*available: a, b"):
        documents(path)
    with pytest.raises(PrefineError, match=r"no field or column 'c'; available: a, b"):
        documents(path, text_field="c")


def test_jsonl_errors_name_the_line(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{"text": "fine"}\nnot json\n')
    with pytest.raises(PrefineError, match=r"bad.jsonl line 3 is not JSON"):
        documents(path)
    path = write(tmp_path / "missing.jsonl", '{"text": "ok"}\n{"title": "no text"}\n')
    with pytest.raises(PrefineError, match=r"missing.jsonl line 2 has no field 'text'; available: title"):
        documents(path)
    path = write(tmp_path / "array.json", '[{"text": "a"}, {"text": "b"}]\n')
    with pytest.raises(PrefineError, match=r"JSON array"):
        documents(path)


@pytest.mark.parametrize("compress", [False, True])
def test_csv_handles_quoting(tmp_path, compress):
    text = 'id,review,label\n1,"Good, really good. Loved it.",pos\n2,"Spans\ntwo lines. ""Quoted"" too.",neg\n'
    path = write(tmp_path / ("r.csv.gz" if compress else "r.csv"), text, compress)
    assert documents(path) == [["Good, really good.", "Loved it."], ["Spans two lines.", '"Quoted" too.']]


def test_csv_wrong_column_lists_available(tmp_path):
    path = write(tmp_path / "r.csv", "id,body,label\n1,hello,pos\n")
    with pytest.raises(PrefineError, match=r"no field or column 'text'; available: id, body, label"):
        documents(path, text_field="text")


def test_tsv_keeps_stray_quotes_literal(tmp_path):
    # A lone quote must not swallow the tabs and lines after it (NSMC-style review files).
    text = 'id\tdocument\tlabel\n1\t"Best" movie ever. Wow.\t1\n2\tHe said "no way\t0\n3\t"wrapped ""quoted"" field."\t1\n'
    path = write(tmp_path / "r.tsv", text)
    assert documents(path) == [['"Best" movie ever.', "Wow."], ['He said "no way'], ['wrapped "quoted" field.']]


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\nHello there.,1\n".encode("utf-8"))
    assert documents(path) == [["Hello there."]]


def test_auto_detection(tmp_path, caplog):
    assert detect_text_format(write(tmp_path / "a.txt", LINES)) == "lines"
    assert detect_text_format(write(tmp_path / "b.txt", PARAGRAPHS)) == "paragraphs"
    assert detect_text_format(write(tmp_path / "c.txt", LINE_DOCUMENTS)) == "line-documents"
    wrapped = (
        "This paragraph is wrapped at a fixed\nwidth so lines stop mid sentence and\ncontinue on the next one.\n\n"
        "Another short\nparagraph here.\n"
    )
    assert detect_text_format(write(tmp_path / "d.txt", wrapped)) == "paragraphs"
    korean = "영화가 정말 재미있어요.\n배우들이 좋았다.\n\n다시 볼까요?\n"
    assert detect_text_format(write(tmp_path / "e.txt.gz", korean, compress=True)) == "lines"
    with caplog.at_level(logging.INFO, logger="prefine.corpus"):
        assert documents(tmp_path / "b.txt") == documents(tmp_path / "b.txt", format="paragraphs")
    assert "paragraphs" in caplog.text and "b.txt" in caplog.text


def test_folders_globs_and_order(tmp_path):
    write(tmp_path / "corpus" / "b.txt", "Second file.\n")
    write(tmp_path / "corpus" / "nested" / "a.txt", "Nested file.\n")
    write(tmp_path / "corpus" / "c.txt.gz", "Third file.\n", compress=True)
    write(tmp_path / "corpus" / ".hidden", "Never read.\n")
    expected = ["b.txt", "c.txt.gz", "nested/a.txt"]

    def as_names(paths):
        return [p.relative_to(tmp_path / "corpus").as_posix() for p in paths]

    assert as_names(resolve_paths([str(tmp_path / "corpus")])) == expected
    assert as_names(resolve_paths([str(tmp_path / "corpus" / "**" / "*.txt*"), str(tmp_path / "corpus" / "b.txt")])) == expected
    assert list(iter_sentences(CorpusConfig(paths=[str(tmp_path / "corpus")]))) == ["Second file.", "Third file.", "Nested file."]


def test_path_errors(tmp_path):
    with pytest.raises(PrefineError, match=r"corpus file not found: .*nope.txt; check the path"):
        resolve_paths([str(tmp_path / "nope.txt")])
    with pytest.raises(PrefineError, match=r"no corpus files match .*\*.md"):
        resolve_paths([str(tmp_path / "*.md")])
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(PrefineError, match=r"folders are empty"):
        resolve_paths([str(tmp_path / "empty_dir")])


def test_empty_corpus(tmp_path):
    write(tmp_path / "blank.txt", "\n   \n\n")
    write(tmp_path / "empty.jsonl", "")
    for name in ("blank.txt", "empty.jsonl"):
        with pytest.raises(PrefineError, match=r"holds no text"):
            documents(tmp_path / name)


def test_non_utf8_names_file_and_line(tmp_path):
    lines = [f"Sentence number {i}." for i in range(1, 30)]
    data = "\n".join(lines).encode("utf-8").replace(b"number 17.", "número 17.".encode("cp1252"))
    for name, blob in (("latin.txt", data), ("latin.txt.gz", gzip.compress(data))):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(PrefineError, match=rf"{name} line 17 is not valid UTF-8.*iconv -f"):
            documents(tmp_path / name, format="lines")


def test_long_documents_are_cut(tmp_path):
    path = write(tmp_path / "long.txt", "\n".join(f"Sentence {i}." for i in range(25)) + "\n")
    pieces = documents(path, format="lines", max_sentences_per_document=10)
    assert [len(piece) for piece in pieces] == [10, 10, 5]
    assert sum(pieces, []) == [f"Sentence {i}." for i in range(25)]
    # Paragraph blocks with no blank line at all are bounded too.
    assert [len(p) for p in documents(path, format="paragraphs", max_sentences_per_document=10)] == [10, 10, 5]


def test_streaming_memory_stays_far_below_file_size(tmp_path):
    path = tmp_path / "big.txt"
    sentence = "This generated sentence is long enough to make the file large quickly. "
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(4000):
            handle.write("".join(f"{sentence}{i}.\n" for i in range(20)) + "\n")
    size = path.stat().st_size
    assert size > 5_000_000
    stream = iter_documents(CorpusConfig(paths=[str(path)], format="lines"))
    assert inspect.isgenerator(stream)
    tracemalloc.start()
    try:
        count = sum(1 for _ in stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 4000
    assert peak < size / 20


def test_fingerprint_tracks_files_and_config(tmp_path):
    path = write(tmp_path / "a.txt", LINES)
    config = CorpusConfig(paths=[str(path)])
    first = corpus_fingerprint(config)
    assert corpus_fingerprint(CorpusConfig(paths=[str(path)])) == first
    assert corpus_fingerprint(CorpusConfig(paths=[str(path)], format="lines")) != first
    write(path, LINES + "More text.\n")
    assert corpus_fingerprint(config) != first
    stat = path.stat()
    second = corpus_fingerprint(config)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert corpus_fingerprint(config) != second


# --- Hugging Face datasets (local folders only: tests never touch the network) ---------------


@pytest.fixture
def saved_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "reviews"
    datasets.Dataset.from_dict({"label": [1, 0, 1], "review": ["Loved it. Great cast.", "", "Boring."]}).save_to_disk(str(folder))
    return folder


def test_dataset_folder(saved_dataset, caplog):
    with caplog.at_level(logging.INFO, logger="prefine.corpus"):
        assert documents(saved_dataset) == [["Loved it.", "Great cast."], ["Boring."]]  # auto-detected folder
    assert "'review'" in caplog.text
    assert documents(saved_dataset, format="dataset", text_field="review") == [["Loved it.", "Great cast."], ["Boring."]]
    with pytest.raises(PrefineError, match=r"no field or column 'text'; available: label, review"):
        documents(saved_dataset, format="dataset", text_field="text")
    fingerprint = corpus_fingerprint(CorpusConfig(paths=[str(saved_dataset)]))
    assert len(fingerprint) == 64


def test_dataset_dict_folder_and_split(tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "dict"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict({"text": ["Train text."]}), "test": datasets.Dataset.from_dict({"text": ["Test text."]})}
    ).save_to_disk(str(folder))
    assert documents(folder, format="dataset") == [["Train text."]]
    assert documents(folder, format="dataset", dataset_split="test") == [["Test text."]]
    with pytest.raises(PrefineError, match=r"no split 'dev'; available splits: train, test"):
        documents(folder, format="dataset", dataset_split="dev")


def test_dataset_without_datasets_package(saved_dataset, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)
    with pytest.raises(PrefineError, match=r"pip install 'prefine\[datasets\]'"):
        documents(saved_dataset)


def test_dataset_by_name_streams(monkeypatch):
    # Stand in for the Hub with a local iterable dataset: same code path, no network.
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name, config_name, split, streaming):
        calls.append((name, config_name, split, streaming))
        return datasets.Dataset.from_dict({"id": [1, 2], "content": ["Streamed text. Second.", "More."]}).to_iterable_dataset()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    config = CorpusConfig(paths=["someone/reviews"], format="dataset", dataset_split="validation")
    assert list(iter_documents(config)) == [["Streamed text.", "Second."], ["More."]]
    assert calls == [("someone/reviews", None, "validation", True)]
    # The same name[:config][:split] syntax as task data.
    calls.clear()
    list(iter_documents(CorpusConfig(paths=["someone/reviews:plain:test"], format="dataset")))
    assert calls == [("someone/reviews", "plain", "test", True)]
    assert corpus_fingerprint(config) != corpus_fingerprint(CorpusConfig(paths=["someone/other"], format="dataset"))


def test_a_stray_carriage_return_inside_a_tsv_field_is_text(tmp_path):
    corpus = tmp_path / "reviews.tsv"
    corpus.write_bytes(b"id\treview\n1\tgreat film\rloved it\n2\tdull\r\n")
    documents = list(iter_documents(CorpusConfig(paths=[str(corpus)])))
    # Read as text (the sentence splitter then treats the CR as any other whitespace).
    assert [" ".join(document) for document in documents] == ["great film loved it", "dull"]


def test_a_stray_carriage_return_inside_a_csv_field_is_a_space_not_an_error(tmp_path):
    stray = tmp_path / "stray.csv"
    stray.write_bytes(b"id,review\n1,great film\rloved it\n")
    assert [" ".join(d) for d in iter_documents(CorpusConfig(paths=[str(stray)]))] == ["great film loved it"]


def test_binary_and_utf16_files_are_named_as_such(tmp_path):
    (tmp_path / "program").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    (tmp_path / "notes.txt").write_bytes("hello\n".encode("utf-16"))
    with pytest.raises(PrefineError, match="looks like a binary file"):
        list(iter_documents(CorpusConfig(paths=[str(tmp_path / "program")])))
    with pytest.raises(PrefineError, match="is UTF-16 text"):
        list(iter_documents(CorpusConfig(paths=[str(tmp_path / "notes.txt")])))
