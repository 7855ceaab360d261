"""Reading JSON files with errors that say which file, which line, what is wrong and how to fix it.

Two shapes cover every JSON file prefine reads: a file holding one JSON object (config.json,
run.json, tokenizer settings), read by `read_json_object`, and JSON Lines, one object per line
(data sets, corpora), read by `iter_jsonl`. Both turn every way a file can be broken (missing,
not UTF-8, not JSON, JSON of the wrong kind) into one PrefineError line, so a broken file reads
the same wherever it is met.

This module sits below everything else in the package: it imports only the standard library and
prefine.errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prefine.errors import PrefineError

_JSON_KINDS = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
ARRAY_FILE_HINT = "convert an array file with jq -c '.[]'"


def json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type ("array", not Python's "list"), as error messages say it."""
    return _JSON_KINDS.get(type(value), type(value).__name__)


def read_json_object(path: str | Path, *, fix: str, missing: str | None = None, missing_ok: bool = False) -> dict[str, Any]:
    """The JSON object that the file at `path` holds.

    `fix` ends every error message: what the user should do about a broken file ("re-download the
    model"). A missing file is an error saying `missing` (a whole message; default "<path> not
    found; <fix>"), or an empty dict with `missing_ok`, for optional files.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte order mark some Windows editors write is not an error
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise PrefineError(missing or f"{path} not found; {fix}") from None
    except UnicodeDecodeError as error:
        raise PrefineError(f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start}); {fix}") from None
    except OSError as error:
        raise PrefineError(f"{path} cannot be read ({error.strerror or error}); {fix}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise PrefineError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); {fix}") from None
    if not isinstance(value, dict):
        raise PrefineError(f"{path} must hold a JSON object, not a JSON {json_kind(value)}; {fix}")
    return value


def iter_jsonl(
    lines: str | Path | Iterable[tuple[int, str]], source: str | Path | None = None, *, each_line: str = "one JSON object"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSON Lines file.

    `lines` is the file's path, or its (line number, text) pairs from a reader that already
    decodes the file (prefine.corpus.readers.iter_file_lines handles gzip and encodings); `source`
    names the file in errors (default: the path). `each_line` says what a line must be, in the
    errors' fix ("one object with token and tag lists").
    """
    if isinstance(lines, (str, Path)):
        source = lines if source is None else source
        lines = _numbered_lines(Path(lines))
    seen_a_line = False
    for number, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            # A whole-file JSON array is the likeliest mistake; its first line fails to parse when the array spans several lines.
            hint = f" (the file looks like one JSON array; {ARRAY_FILE_HINT})" if not seen_a_line and line.lstrip().startswith("[") else ""
            raise PrefineError(
                f"{source} line {number} is not JSON ({error.msg} at column {error.colno}){hint}; each line must be {each_line}"
            ) from None
        if not isinstance(record, dict):
            hint = f" ({ARRAY_FILE_HINT})" if isinstance(record, list) else ""
            raise PrefineError(f"{source} line {number} is a JSON {json_kind(record)}, not an object; each line must be {each_line}{hint}")
        seen_a_line = True
        yield number, record


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8-sig", newline="\n") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\r\n")
    except FileNotFoundError:
        raise PrefineError(f"{path} not found; check the path") from None
    except UnicodeDecodeError as error:
        raise PrefineError(f"{path} is not UTF-8 text ({error.reason}); convert it with iconv -f <encoding> -t utf-8") from None
