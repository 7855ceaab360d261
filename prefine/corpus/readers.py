"""Streaming corpus readers: files, folders, globs or a Hugging Face dataset in, documents out.

A document is a list of sentences (stripped, non-empty); pre-training draws next-sentence pairs
from inside a document, so the readers keep document boundaries wherever the format has them:

- `lines`           one sentence per line, a blank line between documents (the BERT convention)
- `paragraphs`      blank-line-separated blocks are documents, split into sentences
- `line-documents`  every non-empty line is a document (one review per line), split into sentences
- `jsonl`, `csv`, `tsv`   every record's text field is a document, split into sentences
- `dataset`         a Hugging Face dataset `name[:config][:split]` or a folder saved with `save_to_disk`

Any file may be gzip-compressed (`.gz`). Everything streams line by line, so memory is bounded
by the longest document (capped at `max_sentences_per_document`), never by the corpus size.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import gzip
import hashlib
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefine.config import option
from prefine.corpus.datasets_source import is_saved_dataset, load_dataset_source
from prefine.corpus.sentences import split_sentences
from prefine.errors import PrefineError
from prefine.jsonio import iter_jsonl

logger = logging.getLogger(__name__)

CorpusFormat = Literal["auto", "lines", "paragraphs", "line-documents", "jsonl", "csv", "tsv", "dataset"]

# Field/column names that obviously hold the text, in order of preference.
TEXT_FIELD_CANDIDATES = (
    "text",
    "content",
    "document",
    "sentence",
    "review",
    "body",
    "article",
    "passage",
    "context",
    "abstract",
)
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}
_SENTENCE_TERMINATORS = tuple(".!?…。！？\"'”’)]")
_AUTO_SAMPLE_LINES = 500
# csv refuses fields above 128 KiB by default; a long review or article can exceed that.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class CorpusConfig:
    paths: list[str] = option(
        [], "corpus files, folders (read recursively) or globs; a Hugging Face dataset name or saved dataset folder with --format dataset"
    )
    format: CorpusFormat = option(
        "auto", "corpus layout; auto picks by suffix (.jsonl .csv .tsv, optionally .gz) and, for plain text, by looking at the first lines"
    )
    text_field: str | None = option(
        None, "JSONL field, CSV/TSV column or dataset column holding the text (default: the obvious one, such as text or content)"
    )
    dataset_split: str = option("train", "split to read when the corpus is a Hugging Face dataset")
    max_sentences_per_document: int = option(
        10_000, "cut longer documents into pieces of this many sentences, so one pathological document cannot exhaust memory"
    )


_announced: set[str] = set()
_checking = False  # check_corpus runs before any work starts, so it announces nothing


def _announce(message: str) -> None:
    """Log a detection decision once per process, so reading a corpus twice does not repeat it."""
    if not _checking and message not in _announced:
        _announced.add(message)
        logger.info(message)


# ---------------------------------------------------------------------------------------------
# Paths


def _files_under(directory: Path) -> list[Path]:
    # Hidden files (.DS_Store, .gitignore) are never corpus text.
    return [
        path
        for path in directory.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    ]


def resolve_paths(paths: list[str]) -> list[Path]:
    """Expand files, folders (recursively) and globs into a sorted, de-duplicated list of files.

    A saved Hugging Face dataset folder is kept as one entry rather than expanded into its Arrow files.
    """
    if not paths:
        raise PrefineError("no corpus given; pass one or more files, folders or globs")
    resolved: set[Path] = set()
    for entry in paths:
        if glob.has_magic(entry):
            matches = [Path(match) for match in glob.glob(entry, recursive=True)]
            if not matches:
                raise PrefineError(f"no corpus files match {entry}; check the pattern")
        else:
            matches = [Path(entry)]
            if not matches[0].exists():
                raise PrefineError(f"corpus file not found: {entry}; check the path (a Hugging Face dataset name needs --format dataset)")
        for match in matches:
            if match.is_dir() and not is_saved_dataset(match):
                resolved.update(_files_under(match))
            else:
                resolved.add(match)
    if not resolved:
        raise PrefineError(f"no corpus files found in {', '.join(paths)}; the folders are empty")
    return sorted(resolved)


# ---------------------------------------------------------------------------------------------
# Lines


def iter_file_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text without line ending) from a plain or gzip file, one line at a time.

    Bytes are decoded per line so an encoding error can name its line number.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number == 1:
                    _check_text_start(path, raw)
                if b"\0" in raw:
                    raise PrefineError(_binary_message(path, f"a NUL byte on line {number}"))
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise PrefineError(
                        f"{path} line {number} is not valid UTF-8 (byte {raw[error.start]:#04x} at column {error.start + 1}); "
                        f"convert the file with iconv -f <encoding> -t utf-8 (e.g. cp949, euc-kr, latin-1)"
                    ) from None
                if number == 1:
                    text = text.removeprefix("\ufeff")  # UTF-8 byte order mark written by some Windows tools
                yield number, text.rstrip("\r\n")
    except (gzip.BadGzipFile, EOFError) as error:
        raise PrefineError(f"{path} is not a readable gzip file ({error}); re-compress it or drop the .gz suffix") from None


_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def _binary_message(path: Path, evidence: str) -> str:
    return f"{path} looks like a binary file, not text ({evidence}); point at text files (plain text, .jsonl, .csv or .tsv, optionally .gz)"


def _check_text_start(path: Path, start: bytes) -> None:
    """UTF-16 and binary files named as such, from their first bytes, instead of a decoding error."""
    if start.startswith(_UTF16_MARKS):
        raise PrefineError(f"{path} is UTF-16 text; convert it with iconv -f utf-16 -t utf-8 {path} > {path.stem}.utf8{path.suffix}")
    if b"\0" in start:
        raise PrefineError(_binary_message(path, "NUL bytes near its start"))


def check_corpus(config: CorpusConfig) -> None:
    """Everything about the corpus that can fail, checked before any work: paths, binary files,
    format and text column, encoding of the first lines, and that there is text at all.

    Reads the first few kilobytes of each file and the corpus up to its first document (a
    Hugging Face dataset is only checked when it is read).
    """
    if config.format == "dataset":
        _sources(config)  # names at least one dataset
        return
    for file in resolve_paths(config.paths):
        if file.is_dir():
            continue  # a saved dataset folder, checked when read
        try:
            with (gzip.open if file.suffix == ".gz" else open)(file, "rb") as handle:
                _check_text_start(file, handle.read(8192))
        except (gzip.BadGzipFile, EOFError) as error:
            raise PrefineError(f"{file} is not a readable gzip file ({error}); re-compress it or drop the .gz suffix") from None
        except PermissionError:
            raise PrefineError(f"{file} is not readable (permission denied); check its permissions") from None
    global _checking
    _checking = True
    try:
        next(iter_documents(config))
    finally:
        _checking = False


def _base_suffix(path: Path) -> str:
    suffixes = path.suffixes
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1].lower() if suffixes else ""


def detect_text_format(path: Path) -> str:
    """Pick lines, paragraphs or line-documents for a plain-text file from its first lines.

    No blank lines: every line is a document. Blank lines with (mostly) one complete sentence per
    line: the BERT one-sentence-per-line layout. Blank lines with multi-sentence or wrapped lines
    (lines that stop mid-sentence): paragraphs.
    """
    blank_lines = 0
    text_lines: list[str] = []
    for number, line in iter_file_lines(path):
        if line.strip():
            text_lines.append(line.strip())
        else:
            blank_lines += 1
        if number >= _AUTO_SAMPLE_LINES:
            break
    if not blank_lines or not text_lines:
        return "line-documents"
    multi_sentence = sum(len(split_sentences(line)) > 1 for line in text_lines) / len(text_lines)
    unterminated = sum(not line.endswith(_SENTENCE_TERMINATORS) for line in text_lines) / len(text_lines)
    return "lines" if multi_sentence < 0.2 and unterminated < 0.5 else "paragraphs"


def _file_format(path: Path, requested: str) -> str:
    if requested != "auto":
        return requested
    by_suffix = _SUFFIX_FORMATS.get(_base_suffix(path))
    if by_suffix:
        _announce(f"corpus format: {by_suffix} (from the suffix of {path}; override with --format)")
        return by_suffix
    detected = detect_text_format(path)
    explanation = {
        "lines": "blank lines between short one-sentence lines",
        "paragraphs": "blank lines between multi-sentence or wrapped lines",
        "line-documents": "no blank lines, so each line is a document",
    }[detected]
    _announce(f"corpus format: {detected} (auto-detected from {path}: {explanation}; override with --format)")
    return detected


# ---------------------------------------------------------------------------------------------
# Text fields


def _choose_text_field(available: list[str], requested: str | None, source: str, string_fields: list[str] | None = None) -> str:
    listing = ", ".join(available) if available else "none"
    if requested is not None:
        if requested not in available:
            raise PrefineError(f"{source} has no field or column '{requested}'; available: {listing}")
        return requested
    by_lowercase = {name.lower(): name for name in available}
    for candidate in TEXT_FIELD_CANDIDATES:
        if candidate in by_lowercase:
            chosen = by_lowercase[candidate]
            break
    else:
        only_text = string_fields if string_fields is not None else available
        if len(only_text) != 1:
            raise PrefineError(f"cannot tell which field of {source} holds the text; choose one with --text-field (available: {listing})")
        chosen = only_text[0]
    _announce(f"corpus text field: '{chosen}' (detected in {source}; override with --text-field)")
    return chosen


# ---------------------------------------------------------------------------------------------
# Per-format document readers (each yields documents that may still be too long; see _cap)


def _read_lines(path: Path) -> Iterator[list[str]]:
    document: list[str] = []
    for _, line in iter_file_lines(path):
        line = line.strip()
        if line:
            document.append(line)
        elif document:
            yield document
            document = []
    if document:
        yield document


def _read_paragraphs(path: Path, max_lines: int) -> Iterator[list[str]]:
    block: list[str] = []
    for _, line in iter_file_lines(path):
        line = line.strip()
        if line:
            block.append(line)
        # A file with no blank lines at all would otherwise grow one block without bound.
        if block and (not line or len(block) >= max_lines):
            yield split_sentences(" ".join(block))
            block = []
    if block:
        yield split_sentences(" ".join(block))


def _read_line_documents(path: Path) -> Iterator[list[str]]:
    for _, line in iter_file_lines(path):
        if line.strip():
            yield split_sentences(line)


def _record_text(value: Any, source: str, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PrefineError(f"{source}: field '{field}' holds {type(value).__name__}, not text; choose a text field with --text-field")
    return value


def _read_jsonl(path: Path, text_field: str | None) -> Iterator[list[str]]:
    field = None
    for number, record in iter_jsonl(iter_file_lines(path), path):
        if field is None:
            strings = [key for key, value in record.items() if isinstance(value, str)]
            field = _choose_text_field(list(record), text_field, f"{path}", strings)
        if field not in record:
            raise PrefineError(f"{path} line {number} has no field '{field}'; available: {', '.join(record) or 'none'}")
        text = _record_text(record[field], f"{path} line {number}", field)
        if text.strip():
            yield split_sentences(text)


def unquote_tsv_field(value: str) -> str:
    # TSV is read with quoting off so a lone quote in a review cannot swallow the rest of the
    # file. A field that a CSV writer did quote arrives with its quotes: unwrap it only when every
    # inner quote is doubled, so a sentence that merely starts and ends with a quotation
    # ("Go," he said, "now") keeps its quotes.
    if len(value) >= 2 and value[0] == value[-1] == '"' and '"' not in value[1:-1].replace('""', ""):
        return value[1:-1].replace('""', '"')
    return value


def delimited_rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a TSV (delimiter tab) or CSV file, header first; blank lines give [].

    TSV is split on tabs and newlines only: no quoting (see unquote_tsv_field), and a carriage
    return inside a field is text, as a spreadsheet or `cut` sees it. CSV follows the csv module's
    quoting, with a lone carriage return inside a line read as a space (the module would take it
    for a line break in the middle of a field), and its errors are worded for the user.
    """
    if delimiter == "\t":
        for number, line in iter_file_lines(path):
            yield number, line.split("\t") if line else []
        return
    reader = csv.reader((line.replace("\r", " ") + "\n" for _, line in iter_file_lines(path)), delimiter=delimiter)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error:
        # What the module can still object to (in its default, non-strict mode) is a field beyond its size limit.
        raise PrefineError(f"{path} line {reader.line_num} holds a field too large to read (over 2 GB); split the file") from None


def _read_delimited(path: Path, text_field: str | None, delimiter: str) -> Iterator[list[str]]:
    is_tsv = delimiter == "\t"
    rows = delimited_rows(path, delimiter)
    header = next(rows, (0, None))[1]
    if header is None:
        return
    if is_tsv:
        header = [unquote_tsv_field(name) for name in header]
    column = _choose_text_field(header, text_field, f"{path} (columns from its header line)")
    index = header.index(column)
    for number, row in rows:
        if not row:
            continue
        if index >= len(row):
            raise PrefineError(f"{path} line {number} has {len(row)} columns, fewer than the header's {len(header)}; fix that row")
        text = unquote_tsv_field(row[index]) if is_tsv else row[index]
        if text.strip():
            yield split_sentences(text)


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets


def _read_dataset(name: str, config: CorpusConfig) -> Iterator[list[str]]:
    dataset, source = load_dataset_source(name, config.dataset_split, streaming=True)
    columns = list(dataset.column_names or [])
    string_columns = [
        column for column, feature in (dataset.features or {}).items() if getattr(feature, "dtype", None) in ("string", "large_string")
    ]
    if not columns:  # a streamed Hub dataset may not declare its features: look at the first row
        first = next(iter(dataset), None)
        if first is None:
            return
        columns = list(first)
        string_columns = [column for column, value in first.items() if isinstance(value, str)]
    column = _choose_text_field(columns, config.text_field, source, string_columns)
    for batch in dataset.select_columns([column]).iter(batch_size=1000):
        for value in batch[column]:
            text = _record_text(value, source, column)
            if text.strip():
                yield split_sentences(text)


# ---------------------------------------------------------------------------------------------
# Public API


def _documents_of(path: Path, config: CorpusConfig) -> Iterator[list[str]]:
    if path.is_dir():  # resolve_paths only keeps folders that hold a saved dataset
        yield from _read_dataset(str(path), config)
        return
    file_format = _file_format(path, config.format)
    if file_format == "lines":
        yield from _read_lines(path)
    elif file_format == "paragraphs":
        yield from _read_paragraphs(path, config.max_sentences_per_document)
    elif file_format == "line-documents":
        yield from _read_line_documents(path)
    elif file_format == "jsonl":
        yield from _read_jsonl(path, config.text_field)
    elif file_format == "csv":
        yield from _read_delimited(path, config.text_field, ",")
    elif file_format == "tsv":
        yield from _read_delimited(path, config.text_field, "\t")
    elif file_format == "dataset":
        raise PrefineError(
            f"{path} is a file, not a Hugging Face dataset; use --format dataset with a dataset name or saved dataset folder"
        )
    else:
        raise PrefineError(
            f"unknown corpus format '{file_format}'; choose one of auto, lines, paragraphs, line-documents, jsonl, csv, tsv, dataset"
        )


def _cap(documents: Iterable[list[str]], max_sentences: int) -> Iterator[list[str]]:
    """Drop empty documents and cut long ones into pieces of at most `max_sentences` sentences."""
    if max_sentences < 1:
        raise PrefineError(f"max_sentences_per_document must be at least 1, got {max_sentences}")
    for document in documents:
        for start in range(0, len(document), max_sentences):
            yield document[start : start + max_sentences]


def _sources(config: CorpusConfig) -> list[Path | str]:
    """The files (or dataset names and folders) that `config` reads, in reading order."""
    if config.format == "dataset":
        if not config.paths:
            raise PrefineError("no dataset given; pass a Hugging Face dataset name or a folder saved with save_to_disk")
        return [Path(name) if Path(name).is_dir() else name for name in config.paths]
    return list(resolve_paths(config.paths))


def iter_documents(config: CorpusConfig) -> Iterator[list[str]]:
    """Stream the corpus as documents (lists of sentences); PrefineError if it holds no text."""
    sources = _sources(config)
    produced = False
    for source in sources:
        documents = _read_dataset(source, config) if isinstance(source, str) else _documents_of(source, config)
        for document in _cap(documents, config.max_sentences_per_document):
            produced = True
            yield document
    if not produced:
        raise PrefineError(f"the corpus {', '.join(map(str, config.paths))} holds no text; point at files with content")


def iter_sentences(config: CorpusConfig) -> Iterator[str]:
    """Stream every sentence of the corpus in order (what tokenizer training needs)."""
    for document in iter_documents(config):
        yield from document


class CorpusSentences:
    """The corpus's sentences as a re-iterable: each pass re-reads the files, so none holds the corpus in memory.

    Tokenizer training reads the corpus twice (`prefine.tokenizer.wordpiece.train_tokenizer`).
    """

    def __init__(self, config: CorpusConfig):
        self.config = config

    def __iter__(self) -> Iterator[str]:
        return iter_sentences(self.config)


def corpus_fingerprint(config: CorpusConfig) -> str:
    """A cheap cache key: sha256 over the config and every resolved file's path, size and mtime.

    Contents are not hashed (that would mean reading the whole corpus); any edit changes the size
    or the modification time, which is what build tools such as make rely on too.
    """
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
    for source in _sources(config):
        files = sorted(_files_under(source)) if isinstance(source, Path) and source.is_dir() else [source]
        for file in files:
            if isinstance(file, Path):
                stat = file.stat()
                digest.update(f"{file.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            else:
                digest.update(f"dataset:{file}\n".encode())  # a Hub name: the name and split are all we know
    return digest.hexdigest()
