"""The built-in quickstart corpus and task: stdlib docstrings and pydoc topics, split without leaks.

The leak filter is tested twice: on small planted corpora (a near-duplicate, a shared sentence and
a reST role, each shown present before and gone after), and on the real built-in corpus against
the test items of all three built-in tasks.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from prefine.corpus.builtin import (
    NEAR_DUPLICATE_JACCARD,
    _parsed_stdlib_docstrings,
    builtin_classification_task,
    builtin_leak_report,
    builtin_pretraining_documents,
    builtin_split,
    clean_documentation,
    documentation_sentences,
    highest_jaccard,
    normalise_sentence,
    remove_leaks,
    stdlib_docstrings,
    strip_rest_markup,
    word_shingles,
)
from prefine.corpus.builtin_entities import builtin_entity_task
from prefine.corpus.builtin_generation import builtin_generation_task
from prefine.corpus.sentences import split_sentences

_ROLE_MARKUP = re.compile(r":\w+:`")


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
    raw = (
        "Title\n=====\n\n   sum ::= a "
        + " b\n   | b\nAdd numbers. It is equivalent to::\n\n    x = a + b\n\nExample:\n>>> add(1, 2)\n3\n\nThe end."
    )
    assert clean_documentation(raw) == "Title\n\nAdd numbers. It is equivalent to:\n\nExample:\n\nThe end."
    assert documentation_sentences("Args:\n\nReturns the sum. Fast.") == ["Returns the sum."]


def test_rest_markup_becomes_the_name_it_shows():
    assert strip_rest_markup("Call :func:`len` or :meth:`~email.message.Message.get`.") == "Call len or email.message.Message.get."
    assert (
        strip_rest_markup("See :ref:`the guide <guide-target>`, :py:data:`sys.path`, :meth:`!close()` and ``x = 1``.")
        == "See the guide, sys.path, close and x = 1."
    )
    assert strip_rest_markup("no markup: a `default role` stays") == "no markup: a `default role` stays"


def test_sentences_compare_without_case_spacing_punctuation_or_markup():
    assert (
        normalise_sentence("Call  :func:`os.path.join` FIRST.")
        == normalise_sentence("call os.path.join first")
        == "call os path join first"
    )
    assert normalise_sentence("Call os.path.join ( ) first .") == "call os path join first"  # the entity task's words
    assert normalise_sentence("Return a copy.") != normalise_sentence("Return a deep copy.")
    assert word_shingles(["A b, c.", "D"], size=3) == {("a", "b", "c"), ("b", "c", "d")}
    assert word_shingles(["Too short"], size=3) == {("too", "short")}


# A planted corpus: a held-out (test) docstring, and pre-training documents that leak it in each
# of the three ways, plus one that does not.
HELD_OUT = [
    ["Pack a widget in the parent widget and use the options after, anchor and before.", "It returns None."],
    ["Return a shallow copy of the mapping.", "The :exc:`KeyError` is raised when the key is missing."],
]
NEAR_DUPLICATE = ["Grid a widget in the parent widget and use the options after, anchor and before.", "It returns  none!"]
SHARES_A_SENTENCE = [
    "Unrelated first sentence about bread.",
    "RETURN a shallow copy of the :class:`mapping`.",
    "Unrelated last sentence about butter.",
]
HAS_A_ROLE = ["Raise :exc:`ValueError` when :func:`json.loads` cannot decode ``text``.", "Nothing else is shared here."]
UNRELATED = ["Compute the checksum of a file.", "Blocks are read one at a time."]


def test_planted_leaks_are_really_there_before_the_filter():
    documents = [NEAR_DUPLICATE, SHARES_A_SENTENCE, HAS_A_ROLE, UNRELATED]
    similarity = highest_jaccard(documents, HELD_OUT)
    assert similarity[0] >= NEAR_DUPLICATE_JACCARD and all(value < NEAR_DUPLICATE_JACCARD for value in similarity[1:])
    # Only the markup-, case- and punctuation-blind comparison sees the shared sentence.
    assert SHARES_A_SENTENCE[1] not in HELD_OUT[1]
    assert normalise_sentence(SHARES_A_SENTENCE[1]) == normalise_sentence(HELD_OUT[1][0])
    # The near-duplicate shares no sentence outright, so only the shingles can catch it.
    held_out_sentences = {normalise_sentence(sentence) for document in HELD_OUT for sentence in document}
    assert normalise_sentence(NEAR_DUPLICATE[0]) not in held_out_sentences


def test_the_filter_drops_near_duplicates_cuts_shared_sentences_and_strips_roles():
    documents = [NEAR_DUPLICATE, SHARES_A_SENTENCE, HAS_A_ROLE, UNRELATED]
    filtered, report = remove_leaks(documents, HELD_OUT)
    assert NEAR_DUPLICATE not in filtered and not any(NEAR_DUPLICATE[0] in document for document in filtered)
    # The shared sentence goes, and its document is cut there so no two sentences become neighbours that were not.
    assert ["Unrelated first sentence about bread."] in filtered and ["Unrelated last sentence about butter."] in filtered
    assert not any(
        normalise_sentence(SHARES_A_SENTENCE[1]) == normalise_sentence(sentence) for document in filtered for sentence in document
    )
    assert ["Raise ValueError when json.loads cannot decode text.", "Nothing else is shared here."] in filtered
    assert not any(_ROLE_MARKUP.search(sentence) or "``" in sentence for document in filtered for sentence in document)
    assert UNRELATED in filtered
    assert filtered == [
        ["Unrelated first sentence about bread."],
        ["Unrelated last sentence about butter."],
        ["Raise ValueError when json.loads cannot decode text.", "Nothing else is shared here."],
        UNRELATED,
    ]
    assert (report.near_duplicate_documents, report.shared_sentences, report.sentences_with_markup) == (1, 1, 2)


def test_a_piece_left_by_a_cut_is_checked_for_near_duplicates_again():
    # Whole, the document is too long to be a near-duplicate; once the shared sentence is cut out, its tail is one.
    filler = [f"Filler sentence number {word} about nothing at all." for word in "abcdefgh"]
    document = [*filler, "Return a shallow copy of the mapping.", NEAR_DUPLICATE[0]]
    assert highest_jaccard([document], HELD_OUT)[0] < NEAR_DUPLICATE_JACCARD
    filtered, report = remove_leaks([document], HELD_OUT)
    assert filtered == [filler] and (report.near_duplicate_documents, report.shared_sentences) == (1, 1)


@pytest.fixture(scope="module")
def unfiltered_documents():
    return list(builtin_pretraining_documents(filter_leaks=False))


@pytest.fixture(scope="module")
def held_out_docstrings():
    return [sentences for docstring, sentences in _parsed_stdlib_docstrings() if builtin_split(docstring) == "task-test"]


def _task_test_sentences(classification_test, entity_test, generation_test) -> dict[str, list[str]]:
    """The normalised sentences of every built-in task's test items, by task."""
    return {
        "classification": [normalise_sentence(sentence) for text, _ in classification_test for sentence in documentation_sentences(text)],
        "entities": [normalise_sentence(" ".join(words)) for words, _ in entity_test],
        "generation": [
            normalise_sentence(sentence)
            for record in generation_test
            for field in ("summary", "document")
            for sentence in split_sentences(record[field])
        ],
    }


def _leaks(documents, held_out_docstrings, classification_test) -> dict[str, int]:
    pretraining = {normalise_sentence(sentence) for document in documents for sentence in document} - {""}
    test_sentences = _task_test_sentences(classification_test, builtin_entity_task()[1], builtin_generation_task()[1])
    leaks = {task: sum(sentence in pretraining for sentence in sentences) for task, sentences in test_sentences.items()}
    leaks["near-duplicates"] = sum(similarity >= NEAR_DUPLICATE_JACCARD for similarity in highest_jaccard(documents, held_out_docstrings))
    leaks["roles"] = sum(bool(_ROLE_MARKUP.search(sentence)) for document in documents for sentence in document)
    return leaks


def test_pretraining_shares_no_sentence_near_duplicate_or_role_with_any_builtin_test_item(
    pretraining_documents, unfiltered_documents, held_out_docstrings, task
):
    _, test = task
    leaks = _leaks(pretraining_documents, held_out_docstrings, test)
    assert leaks == {"classification": 0, "entities": 0, "generation": 0, "near-duplicates": 0, "roles": 0}
    # The checks can fail: without the filter, the real corpus leaks in every one of these ways.
    unfiltered_leaks = _leaks(unfiltered_documents, held_out_docstrings, builtin_classification_task(filter_leaks=False)[1])
    assert all(count > 0 for count in unfiltered_leaks.values()), unfiltered_leaks
    report = builtin_leak_report()
    assert report.near_duplicate_documents > 0 and report.shared_sentences > 0 and report.sentences_with_markup > 0
    assert sum(len(sentence) for document in pretraining_documents for sentence in document) > 1_000_000  # ~1.6 MB of English


def test_pretraining_never_sees_task_test_docstrings(pretraining_documents, held_out_docstrings):
    seen = {normalise_sentence(" ".join(document)) for document in pretraining_documents}
    assert 0.08 < len(held_out_docstrings) / len(stdlib_docstrings()) < 0.25
    assert not any(normalise_sentence(" ".join(sentences)) in seen for sentences in held_out_docstrings)


def test_the_leak_filter_keeps_the_classification_test_set_and_drops_near_duplicate_training_docstrings(task):
    train, test = task
    unfiltered_train, unfiltered_test = builtin_classification_task(filter_leaks=False)
    assert test == unfiltered_test  # before / after numbers compare on the same test items

    def sentences(rows):
        return [documentation_sentences(text) for text, _ in rows]

    assert max(highest_jaccard(sentences(train), sentences(test))) < NEAR_DUPLICATE_JACCARD
    assert max(highest_jaccard(sentences(unfiltered_train), sentences(test))) >= NEAR_DUPLICATE_JACCARD
    assert len(train) > 0.95 * len(unfiltered_train)


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


def _digest(train, test, pretraining) -> str:
    return hashlib.sha256(json.dumps([train, test, pretraining]).encode()).hexdigest()


def test_deterministic_across_processes(task, pretraining_documents):
    # A fresh interpreter with another hash seed must build the very same task and corpus (no set or dict order leaks in).
    script = (
        "import hashlib, json\n"
        "from prefine.corpus.builtin import builtin_classification_task, builtin_pretraining_documents\n"
        "print(hashlib.sha256(json.dumps([*builtin_classification_task(), list(builtin_pretraining_documents())]).encode()).hexdigest())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "12345"}
    )
    assert result.stdout.strip() == _digest(*task, pretraining_documents)
