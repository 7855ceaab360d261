"""The quickstart's built-in corpus and task: Python's own documentation, with no download.

Every Python install ships about 2 MB of real English prose: the docstrings in the standard
library's source and the language reference topics in `pydoc_data.topics`. The docstrings are
read by parsing the source files with `ast` rather than importing the modules, because importing
the whole standard library has side effects (antigravity opens a browser, tkinter needs a display,
`this` prints a poem) and is slow.

The task is topic classification: which top-level package (email, asyncio, logging...) does a
docstring document? A hash of each docstring's qualified name assigns it to "pretrain" or
"task-test" once and for all, and pre-training only ever sees the "pretrain" side, so the test
docstrings are text the model has never read.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import re
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from prefine.corpus.sentences import split_sentences
from prefine.errors import PrefineError

# Folders whose docstrings are tests, demos, vendored wheels or not part of the standard library.
_SKIPPED_FOLDERS = frozenset(
    {"test", "tests", "idle_test", "idlelib", "turtledemo", "site-packages", "dist-packages", "__pycache__", "lib-dynload", "_bundled", "__phello__"}
)
TASK_TEST_PERCENT = 15
MIN_DOCSTRING_CHARACTERS = 40
MIN_SENTENCE_WORDS = 2
_LINE_OF_PUNCTUATION = re.compile(r"^[\W_]+$")  # reST underlines such as ***** or =====


@dataclass(frozen=True)
class Docstring:
    package: str  # top-level module or package, e.g. "email", "asyncio", "json"
    qualified_name: str  # e.g. "email.message.Message.get_payload"
    text: str  # cleaned prose: no doctest sessions, code blocks or reST underlines


def _is_grammar(line: str) -> bool:
    # The language reference's grammar productions: 'if_stmt ::= "if" ...' and their "| ..." lines.
    return "::=" in line or line.startswith("| ")


def clean_documentation(text: str) -> str:
    """Keep the prose of a docstring or reference topic: drop doctest sessions and indented code."""
    kept: list[str] = []
    in_doctest = False
    in_literal_block = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            in_doctest = False
            kept.append("")
            continue
        if stripped.startswith(">>>"):
            in_doctest = True  # the session and its output run until the next blank line
        if in_literal_block and line[:1].isspace():
            continue  # the indented block after "::" is code or grammar, not prose
        in_literal_block = False
        if in_doctest or _LINE_OF_PUNCTUATION.match(stripped) or _is_grammar(stripped):
            continue
        if stripped.endswith("::"):
            in_literal_block = True
            stripped = stripped[:-1]  # "is equivalent to::" reads as "is equivalent to:"
        kept.append(stripped)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def documentation_sentences(text: str) -> list[str]:
    """The sentences of a cleaned docstring, without fragments such as "Args:" or "Returns"."""
    return [sentence for sentence in split_sentences(text) if len(sentence.split()) >= MIN_SENTENCE_WORDS]


def _stdlib_sources() -> list[tuple[Path, tuple[str, ...]]]:
    """Every standard-library .py file in sorted order, with its module path ("email", "mime", "text")."""
    root = Path(sysconfig.get_paths()["stdlib"])
    sources = []
    for directory, folders, files in os.walk(root):
        folders[:] = sorted(name for name in folders if name not in _SKIPPED_FOLDERS and not name.startswith(("config-", ".")))
        for name in sorted(files):
            if name.endswith(".py") and not name.startswith(("test_", "_test")):
                path = Path(directory) / name
                parts = path.relative_to(root).with_suffix("").parts
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                if parts:
                    sources.append((path, parts))
    return sorted(sources)


def _docstrings_in(tree: ast.AST, qualified_name: str) -> Iterator[tuple[str, str]]:
    docstring = ast.get_docstring(tree, clean=True)  # type: ignore[arg-type]
    if docstring:
        yield qualified_name, docstring
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _docstrings_in(node, f"{qualified_name}.{node.name}")


def stdlib_docstrings() -> list[Docstring]:
    """The standard library's module, class and function docstrings, in a deterministic order.

    Repeated texts (a method documented the same way in several classes, up to whitespace) are
    kept once, so the same words cannot land on both sides of the pretrain / task-test split.
    """
    return [docstring for docstring, _ in _parsed_stdlib_docstrings()]


@functools.lru_cache(maxsize=1)
def _parsed_stdlib_docstrings() -> tuple[tuple[Docstring, tuple[str, ...]], ...]:
    seen: set[tuple[str, ...]] = set()
    docstrings = []
    for path, module_parts in _stdlib_sources():
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):
            continue  # a few files are deliberately invalid or target another Python version
        for qualified_name, raw in _docstrings_in(tree, ".".join(module_parts)):
            text = clean_documentation(raw)
            sentences = tuple(documentation_sentences(text))
            if len(text) >= MIN_DOCSTRING_CHARACTERS and sentences and sentences not in seen:
                seen.add(sentences)
                docstrings.append((Docstring(module_parts[0], qualified_name, text), sentences))
    if not docstrings:
        raise PrefineError(f"found no standard-library sources under {sysconfig.get_paths()['stdlib']}; this Python install ships without .py files, so pass your own corpus")
    return tuple(docstrings)


def builtin_split(docstring: Docstring) -> Literal["pretrain", "task-test"]:
    """Assign a docstring to pre-training or to the held-out task test set, stably across runs."""
    bucket = int.from_bytes(hashlib.sha256(docstring.qualified_name.encode()).digest()[:8], "big") % 100
    return "task-test" if bucket < TASK_TEST_PERCENT else "pretrain"


@functools.lru_cache(maxsize=1)
def _reference_topics() -> tuple[str, ...]:
    from pydoc_data.topics import topics  # data only: a dict of strings, no side effects

    return tuple(clean_documentation(topics[name]) for name in sorted(topics))


def builtin_pretraining_documents() -> Iterator[list[str]]:
    """The pre-training corpus: every reference topic plus the docstrings of the "pretrain" split."""
    for text in _reference_topics():
        sentences = documentation_sentences(text)
        if sentences:
            yield sentences
    for docstring, sentences in _parsed_stdlib_docstrings():
        if builtin_split(docstring) == "pretrain":
            yield list(sentences)


def builtin_classification_task(
    num_labels: int = 8,
    max_train_per_label: int = 200,
    max_test_per_label: int = 40,
    min_test_per_label: int = 15,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test) lists of (docstring text, package) for the `num_labels` best-documented packages.

    Labels are the public packages with the most docstrings among those with at least
    `min_test_per_label` held-out docstrings (fewer would make test accuracy noise); each label keeps at most
    `max_train_per_label` training and `max_test_per_label` test examples, so the classes are
    close to balanced and a small model can learn them in a minute or two. Train comes from the
    "pretrain" split and test from the "task-test" split, which pre-training never sees.
    """
    # Private modules (_pydecimal, _pyio) are implementation copies of public ones, not topics.
    docstrings = [doc for doc, _ in _parsed_stdlib_docstrings() if not doc.package.startswith("_")]
    counts = Counter(doc.package for doc in docstrings)
    test_counts = Counter(doc.package for doc in docstrings if builtin_split(doc) == "task-test")
    # Most documented first; ties broken by name so the choice never depends on dict order.
    ranked = sorted(counts, key=lambda package: (-counts[package], package))
    labels = [package for package in ranked if test_counts[package] >= min_test_per_label][:num_labels]
    if len(labels) < num_labels:
        raise PrefineError(f"the built-in task has only {len(labels)} packages with {min_test_per_label}+ test docstrings; ask for at most that many labels")

    def examples(split: str, limit: int) -> list[tuple[str, str]]:
        chosen: list[tuple[str, str]] = []
        taken: Counter[str] = Counter()
        # Sorting by a hash spreads each package's examples over its modules instead of taking the
        # first modules alphabetically, and stays identical from run to run.
        for doc in sorted(docstrings, key=lambda doc: hashlib.sha256(doc.qualified_name.encode()).hexdigest()):
            if doc.package in labels and builtin_split(doc) == split and taken[doc.package] < limit:
                taken[doc.package] += 1
                chosen.append((doc.text, doc.package))
        return chosen

    return examples("pretrain", max_train_per_label), examples("task-test", max_test_per_label)
