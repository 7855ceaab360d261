"""The built-in quickstart corpus and task: stdlib docstrings and pydoc topics, split without leaks."""

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from prefine.corpus.builtin import (
    builtin_classification_task,
    builtin_pretraining_documents,
    builtin_split,
    clean_documentation,
    documentation_sentences,
    stdlib_docstrings,
)


@pytest.fixture(scope="module")
def pretraining_documents():
    return list(builtin_pretraining_documents())


@pytest.fixture(scope="module")
def task():
    return builtin_classification_task()


def test_docstrings_are_real_stdlib_prose():
    docstrings = stdlib_docstrings()
    assert len(docstrings) > 1000
    packages = {doc.package for doc in docstrings}
    assert {"json", "email", "logging"} <= packages
    assert not any(doc.package in ("test", "idlelib") for doc in docstrings)
    assert all(doc.qualified_name.split(".")[0] == doc.package for doc in docstrings)
    assert not any(line.lstrip().startswith(">>>") for doc in docstrings for line in doc.text.splitlines())
    assert len({tuple(documentation_sentences(doc.text)) for doc in docstrings}) == len(docstrings)  # repeats kept once


def test_cleaning_drops_doctests_code_blocks_and_underlines():
    raw = "Title\n=====\n\n   sum ::= a "+" b\n   | b\nAdd numbers. It is equivalent to::\n\n    x = a + b\n\nExample:\n>>> add(1, 2)\n3\n\nThe end."
    assert clean_documentation(raw) == "Title\n\nAdd numbers. It is equivalent to:\n\nExample:\n\nThe end."
    assert documentation_sentences("Args:\n\nReturns the sum. Fast.") == ["Returns the sum."]


def test_pretraining_never_sees_task_test_docstrings(pretraining_documents, task):
    seen = {tuple(document) for document in pretraining_documents}
    held_out = [doc for doc in stdlib_docstrings() if builtin_split(doc) == "task-test"]
    assert 0.08 < len(held_out) / len(stdlib_docstrings()) < 0.25
    assert not any(tuple(documentation_sentences(doc.text)) in seen for doc in held_out)
    _, test = task
    assert not any(tuple(documentation_sentences(text)) in seen for text, _ in test)
    assert sum(len(sentence) for document in pretraining_documents for sentence in document) > 1_000_000  # ~1.6 MB of English


def test_task_labels_splits_and_balance(task):
    train, test = task
    labels = {label for _, label in train}
    assert len(labels) == 8 and {label for _, label in test} == labels
    assert all(label in sys.stdlib_module_names and not label.startswith("_") for label in labels)
    assert max(Counter(label for _, label in train).values()) <= 200
    assert max(Counter(label for _, label in test).values()) <= 40
    assert not {text for text, _ in train} & {text for text, _ in test}
    docs_by_text = {doc.text: doc for doc in stdlib_docstrings()}
    assert all(builtin_split(docs_by_text[text]) == "pretrain" and docs_by_text[text].package == label for text, label in train)
    assert all(builtin_split(docs_by_text[text]) == "task-test" for text, _ in test)
    few_train, few_test = builtin_classification_task(num_labels=3)
    assert len({label for _, label in few_train}) == 3 and {label for _, label in few_test} <= labels


def _task_digest(train, test) -> str:
    return hashlib.sha256(json.dumps([train, test]).encode()).hexdigest()


def test_deterministic_across_processes(task):
    # A fresh interpreter with another hash seed must build the very same task (no set or dict order leaks in).
    script = (
        "import hashlib, json\n"
        "from prefine.corpus.builtin import builtin_classification_task\n"
        "print(hashlib.sha256(json.dumps(list(builtin_classification_task())).encode()).hexdigest())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert result.stdout.strip() == _task_digest(*task)
