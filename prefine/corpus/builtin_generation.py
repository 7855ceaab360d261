"""The built-in generation task: write a docstring's one-line summary from the rest of it, offline.

Python's standard library follows PEP 257: a docstring opens with a one-line summary, then a
blank line, then the details. That gives (body -> summary) pairs of real English prose with no
download, much like titling an article: "Return the repr() of an object, special-casing types"
from the paragraph that explains it.

Two splits keep the test set honest:

- by module: a module's docstrings are either all candidates for testing or all for training
  (a stable hash of the module name), so sibling methods documented alike cannot sit on both
  sides and the test modules are unseen in fine-tuning;
- by pre-training: a test pair must also be on the "task-test" side of `builtin_split`, which the
  built-in pre-training corpus never reads; and since the library repeats some docstrings almost
  word for word under other names (executors, tkinter's pack/grid methods), that corpus also leaves
  out every near-duplicate of a "task-test" docstring and every sentence one shares
  (`builtin.remove_leaks`), so neither a test summary nor its body occurs in pre-training.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefine.corpus.builtin import Docstring, _parsed_stdlib_docstrings, _stdlib_sources, builtin_split

TEST_MODULE_PERCENT = 40
MIN_SUMMARY_WORDS = 3
MAX_SUMMARY_WORDS = 20
MIN_BODY_WORDS = 8


def summary_and_body(docstring: Docstring) -> tuple[str, str] | None:
    """(one-line summary, body) of a PEP 257 docstring, or None when it has no usable pair."""
    first, separator, rest = docstring.text.partition("\n\n")
    if not separator:
        return None
    summary, body = " ".join(first.split()), " ".join(rest.split())
    if not MIN_SUMMARY_WORDS <= len(summary.split()) <= MAX_SUMMARY_WORDS or len(body.split()) < MIN_BODY_WORDS:
        return None
    return summary, body


def module_of(qualified_name: str, modules: frozenset[str]) -> str:
    """The module a qualified name lives in: its longest prefix that names a standard-library module."""
    parts = qualified_name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return parts[0]


def is_test_module(module: str) -> bool:
    return int.from_bytes(hashlib.sha256(module.encode()).digest()[:8], "big") % 100 < TEST_MODULE_PERCENT


def builtin_generation_task() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(train, test) records {"document": body, "summary": summary, "name": qualified name}, in a fixed order."""
    modules = frozenset(".".join(parts) for _, parts in _stdlib_sources())
    train, test = [], []
    for docstring, _ in _parsed_stdlib_docstrings():
        pair = summary_and_body(docstring)
        if pair is None:
            continue
        record = {"document": pair[1], "summary": pair[0], "name": docstring.qualified_name}
        if not is_test_module(module_of(docstring.qualified_name, modules)):
            train.append(record)
        elif builtin_split(docstring) == "task-test":
            test.append(record)
    return train, test


def write_builtin_generation_task(folder: Path, max_train: int | None = None, max_test: int | None = None) -> tuple[Path, Path]:
    """Write train.jsonl and test.jsonl (at most max_train / max_test pairs, the first in a fixed order) into `folder`."""
    train, test = builtin_generation_task()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, records, limit in (("train.jsonl", train, max_train), ("test.jsonl", test, max_test)):
        path = folder / name
        with open(path, "w", encoding="utf-8") as handle:
            for record in records[:limit]:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths[0], paths[1]
