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

The library repeats itself, so the split alone would still leak: the same sentence opens many
docstrings ("No argument."), and sibling methods are documented almost word for word under other
names (assertEqual / assertNotEqual). The pre-training corpus is therefore filtered against every
"task-test" docstring (`remove_leaks`), which covers the test items of all three built-in tasks
(classification, entities in `builtin_entities`, summaries in `builtin_generation`):

* reST markup is stripped (":func:`len`" -> "len", "``x``" -> "x"; `strip_rest_markup`), the
  same rendering the entity task uses, whose labels come from those roles;
* a document whose word-shingle Jaccard similarity with a test docstring reaches
  `NEAR_DUPLICATE_JACCARD` (0.5, over `SHINGLE_WORDS` = 3-word shingles of normalised words) is
  dropped;
* a sentence equal to a sentence of a test docstring after `normalise_sentence` (markup stripped,
  lowercased, only its runs of letters and digits kept, so case, spacing and punctuation do not
  matter) is removed, and its document is cut in two there.

The classification task's test set is the same with or without the filter; its training set
leaves out docstrings that are near-duplicates of its test docstrings. `filter_leaks=False`
turns all of this off, for comparison.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import re
import sysconfig
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Literal

from prefine.corpus.sentences import split_sentences
from prefine.errors import PrefineError

# Folders whose docstrings are tests, demos, vendored wheels or not part of the standard library.
_SKIPPED_FOLDERS = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "turtledemo",
        "site-packages",
        "dist-packages",
        "__pycache__",
        "lib-dynload",
        "_bundled",
        "__phello__",
    }
)
TASK_TEST_PERCENT = 15
MIN_DOCSTRING_CHARACTERS = 40
MIN_SENTENCE_WORDS = 2
_LINE_OF_PUNCTUATION = re.compile(r"^[\W_]+$")  # reST underlines such as ***** or =====
# A reST role as docstrings write it: :func:`len`, :meth:`~email.message.Message.get`,
# :ref:`text <target>`, :py:data:`x`. Group 1 is the role's kind, group 2 the text it shows.
REST_ROLE = re.compile(r":(?:\w+:)*?(\w+):`[~!]?([^`<>]+?)(?:\s*<[^>]+>)?`")
REST_LITERAL = re.compile(r"``([^`]+)``")
_WORD_CHARACTERS = re.compile(r"\w+")
# Near-duplicates. Docstrings are short (a median of 19 words), and one swapped word in a 10-word
# docstring removes 5 of its 6 five-word shingles but only 3 of its 8 three-word ones, so 3-word
# shingles still see "the same template with one word changed". On the real corpus (Python 3.11), pre-training documents by their highest
# Jaccard with a test docstring: 4541 below 0.1, 385 in [0.1, 0.2), 149 in [0.2, 0.3), 125 in
# [0.3, 0.4), 64 in [0.4, 0.5), 65 in [0.5, 0.6), 42 / 40 / 13 / 2 in the next deciles and 10 at 1.0.
# At 0.5 and above the pairs are one text with a word or two swapped ("Return the value of the
# variable as an integer" / "... as a bool", assertEqual / assertNotEqual); between 0.3 and 0.5
# they share a boilerplate sentence or template but say different things (codec file headers,
# "Return True if the operand is ..." for different tests), which the sentence filter handles.
SHINGLE_WORDS = 3
NEAR_DUPLICATE_JACCARD = 0.5


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


def strip_rest_markup(text: str, render_role: Callable[[str, str], str] | None = None) -> str:
    """reST roles and inline literals as plain text: ":func:`len`" -> "len", "``x``" -> "x".

    A role shows its whole target without "~", "!", "<target>" or a call's "()"
    (":meth:`~email.message.Message.get`" -> "email.message.Message.get"). `render_role(kind, name)`,
    when given, writes a role instead ("func", "len" for ":func:`len`"): the entity task marks
    typed names with it, so its words are the very words pre-training reads.
    """

    def role(match: re.Match[str]) -> str:
        name = match.group(2).strip().removesuffix("()")
        return render_role(match.group(1), name) if render_role else name

    return REST_LITERAL.sub(lambda match: match.group(1), REST_ROLE.sub(role, text))


def normalise_sentence(sentence: str) -> str:
    """The form in which two sentences count as the same: reST markup stripped, lowercased, and
    only its runs of letters, digits and underscores kept, joined by single spaces.

    Dropping punctuation also makes a sentence equal to the entity task's words for it
    ("Call :func:`os.path.join` first." and "Call os.path.join first ." both give "call os path join first").
    """
    return " ".join(_WORD_CHARACTERS.findall(strip_rest_markup(sentence).lower()))


def word_shingles(sentences: Sequence[str], size: int = SHINGLE_WORDS) -> frozenset[tuple[str, ...]]:
    """The runs of `size` consecutive normalised words in a document (its whole text when shorter)."""
    words = normalise_sentence(" ".join(sentences)).split()
    if len(words) <= size:
        return frozenset({tuple(words)}) if words else frozenset()
    return frozenset(zip(*(words[start:] for start in range(size))))


class ShingleIndex:
    """Word shingles of reference documents, indexed so that a document is scored only against the
    references it shares a shingle with: thousands of documents against a thousand references take a
    fraction of a second instead of millions of set intersections."""

    def __init__(self, references: Sequence[Sequence[str]], size: int = SHINGLE_WORDS):
        self.size = size
        self._sizes: list[int] = []
        self._holders: defaultdict[tuple[str, ...], list[int]] = defaultdict(list)
        for index, reference in enumerate(references):
            shingles = word_shingles(reference, size)
            self._sizes.append(len(shingles))
            for shingle in shingles:
                self._holders[shingle].append(index)

    def highest_jaccard(self, document: Sequence[str]) -> float:
        """The document's highest word-shingle Jaccard similarity with any reference (0.0 when it shares none)."""
        shingles = word_shingles(document, self.size)
        shared = Counter(chain.from_iterable(self._holders.get(shingle, ()) for shingle in shingles))
        return max((count / (len(shingles) + self._sizes[index] - count) for index, count in shared.items()), default=0.0)


def highest_jaccard(documents: Sequence[Sequence[str]], references: Sequence[Sequence[str]], size: int = SHINGLE_WORDS) -> list[float]:
    """For each document (a list of sentences), its highest word-shingle Jaccard similarity with any reference."""
    index = ShingleIndex(references, size)
    return [index.highest_jaccard(document) for document in documents]


@dataclass(frozen=True)
class LeakReport:
    """What `remove_leaks` took out of a pre-training corpus."""

    near_duplicate_documents: int  # whole documents dropped, before and after the sentence filter
    shared_sentences: int  # sentences removed because a held-out document has them too
    sentences_with_markup: int  # sentences whose reST roles or literals were turned into plain text


def remove_leaks(
    documents: Sequence[Sequence[str]], held_out: Sequence[Sequence[str]], threshold: float = NEAR_DUPLICATE_JACCARD
) -> tuple[list[list[str]], LeakReport]:
    """Pre-training documents (lists of sentences) that leak nothing of the `held_out` documents.

    Documents whose word-shingle Jaccard with a held-out document reaches `threshold` are dropped;
    every sentence loses its reST markup (`strip_rest_markup`); a sentence that equals a held-out
    sentence after `normalise_sentence` is removed and the document is cut there, so the sentences
    that stay next to each other were next to each other in the source (next-sentence prediction
    relies on it). A piece left by the cuts can be a near-duplicate on its own, so the pieces are
    checked again. The order of the documents is kept.
    """
    held_out_sentences = {normalise_sentence(sentence) for document in held_out for sentence in document} - {""}
    index = ShingleIndex(held_out)
    pieces: list[list[str]] = []
    near_duplicates = shared = with_markup = 0
    for document in documents:
        if index.highest_jaccard(document) >= threshold:
            near_duplicates += 1
            continue
        cut: list[list[str]] = [[]]
        for sentence in document:
            plain = strip_rest_markup(sentence)
            with_markup += plain != sentence
            if normalise_sentence(plain) in held_out_sentences:
                shared += 1
                cut.append([])
            else:
                cut[-1].append(plain)
        cut = [piece for piece in cut if piece]
        if len(cut) == 1 and len(cut[0]) == len(document):
            pieces.append(cut[0])  # nothing removed: its similarity is the one just measured
            continue
        for piece in cut:
            if index.highest_jaccard(piece) >= threshold:
                near_duplicates += 1
            else:
                pieces.append(piece)
    return pieces, LeakReport(near_duplicates, shared, with_markup)


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


def _docstrings_in(
    tree: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef, qualified_name: str
) -> Iterator[tuple[str, str]]:
    docstring = ast.get_docstring(tree, clean=True)
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
        raise PrefineError(
            f"found no standard-library sources under {sysconfig.get_paths()['stdlib']}; "
            "this Python install ships without .py files, so pass your own corpus"
        )
    return tuple(docstrings)


def builtin_split(docstring: Docstring) -> Literal["pretrain", "task-test"]:
    """Assign a docstring to pre-training or to the held-out task test set, stably across runs."""
    bucket = int.from_bytes(hashlib.sha256(docstring.qualified_name.encode()).digest()[:8], "big") % 100
    return "task-test" if bucket < TASK_TEST_PERCENT else "pretrain"


@functools.lru_cache(maxsize=1)
def _reference_topics() -> tuple[str, ...]:
    from pydoc_data.topics import topics  # data only: a dict of strings, no side effects

    return tuple(clean_documentation(topics[name]) for name in sorted(topics))


@functools.lru_cache(maxsize=2)
def _pretraining_corpus(filter_leaks: bool) -> tuple[tuple[tuple[str, ...], ...], LeakReport | None]:
    topics = [sentences for sentences in map(documentation_sentences, _reference_topics()) if sentences]
    docstrings = _parsed_stdlib_docstrings()
    documents = topics + [list(sentences) for docstring, sentences in docstrings if builtin_split(docstring) == "pretrain"]
    if not filter_leaks:
        return tuple(map(tuple, documents)), None
    held_out = [sentences for docstring, sentences in docstrings if builtin_split(docstring) == "task-test"]
    filtered, report = remove_leaks(documents, held_out)
    return tuple(map(tuple, filtered)), report


def builtin_pretraining_documents(filter_leaks: bool = True) -> Iterator[list[str]]:
    """The pre-training corpus: every reference topic plus the docstrings of the "pretrain" split.

    With `filter_leaks` (the default) it goes through `remove_leaks` against every "task-test"
    docstring: no reST markup, no near-duplicate of a test docstring, no sentence of one.
    """
    for document in _pretraining_corpus(filter_leaks)[0]:
        yield list(document)


def builtin_leak_report() -> LeakReport:
    """What the leak filter took out of the built-in pre-training corpus."""
    report = _pretraining_corpus(True)[1]
    assert report is not None
    return report


def builtin_classification_task(
    num_labels: int = 8,
    max_train_per_label: int = 200,
    max_test_per_label: int = 40,
    min_test_per_label: int = 15,
    filter_leaks: bool = True,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test) lists of (docstring text, package) for the `num_labels` best-documented packages.

    Labels are the public packages with the most docstrings among those with at least
    `min_test_per_label` held-out docstrings (fewer would make test accuracy noise); each label keeps at most
    `max_train_per_label` training and `max_test_per_label` test examples, so the classes are
    close to balanced and a small model can learn them in a minute or two. Train comes from the
    "pretrain" split and test from the "task-test" split, which pre-training never sees. With
    `filter_leaks`, a training docstring that is a near-duplicate of a test docstring (word-shingle
    Jaccard >= `NEAR_DUPLICATE_JACCARD`) is skipped and the next one in line takes its place; the
    test set is the same either way.
    """
    # Private modules (_pydecimal, _pyio) are implementation copies of public ones, not topics.
    sentences_of = {doc: sentences for doc, sentences in _parsed_stdlib_docstrings() if not doc.package.startswith("_")}
    docstrings = list(sentences_of)
    counts = Counter(doc.package for doc in docstrings)
    test_counts = Counter(doc.package for doc in docstrings if builtin_split(doc) == "task-test")
    # Most documented first; ties broken by name so the choice never depends on dict order.
    ranked = sorted(counts, key=lambda package: (-counts[package], package))
    labels = [package for package in ranked if test_counts[package] >= min_test_per_label][:num_labels]
    if len(labels) < num_labels:
        raise PrefineError(
            f"the built-in task has only {len(labels)} packages with {min_test_per_label}+ test docstrings; "
            "ask for at most that many labels"
        )
    # Sorting by a hash spreads each package's examples over its modules instead of taking the
    # first modules alphabetically, and stays identical from run to run.
    in_order = sorted(
        (doc for doc in docstrings if doc.package in labels), key=lambda doc: hashlib.sha256(doc.qualified_name.encode()).hexdigest()
    )

    def examples(candidates: list[Docstring], limit: int) -> list[Docstring]:
        chosen: list[Docstring] = []
        taken: Counter[str] = Counter()
        for doc in candidates:
            if taken[doc.package] < limit:
                taken[doc.package] += 1
                chosen.append(doc)
        return chosen

    test = examples([doc for doc in in_order if builtin_split(doc) == "task-test"], max_test_per_label)
    train_candidates = [doc for doc in in_order if builtin_split(doc) == "pretrain"]
    if filter_leaks:
        similarities = highest_jaccard([sentences_of[doc] for doc in train_candidates], [sentences_of[doc] for doc in test])
        train_candidates = [doc for doc, similarity in zip(train_candidates, similarities) if similarity < NEAR_DUPLICATE_JACCARD]
    train = examples(train_candidates, max_train_per_label)
    return [(doc.text, doc.package) for doc in train], [(doc.text, doc.package) for doc in test]
