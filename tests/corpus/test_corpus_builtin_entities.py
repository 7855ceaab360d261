"""The built-in entity task: reST roles and code names in Python's docs become typed word spans, split like the classification task."""

from __future__ import annotations

from collections import Counter

from prefine.corpus.builtin_entities import ENTITY_TYPES, builtin_entity_task, tag_sentence


def tagged(sentence: str) -> list[tuple[str, str]]:
    words, tags = tag_sentence(sentence)
    return [(word, tag) for word, tag in zip(words, tags) if tag != "O"]


def test_roles_and_literals_become_plain_text_with_typed_spans():
    words, tags = tag_sentence("Raise :exc:`ValueError` if :func:`os.path.join` fails; see the ``json`` module.")
    assert " ".join(words) == "Raise ValueError if os.path.join fails ; see the json module ."
    assert tagged("Raise :exc:`ValueError` if :func:`os.path.join` fails; see the ``json`` module.") == [
        ("ValueError", "B-EXC"),
        ("os.path.join", "B-FUNC"),
        ("json", "B-MOD"),
    ]
    assert tagged("Use :class:`~collections.OrderedDict` or :meth:`dict.get`.") == [
        ("collections.OrderedDict", "B-TYPE"),
        ("dict.get", "B-FUNC"),
    ]


def test_entity_words_and_pretraining_text_render_roles_the_same_way():
    # The leak filter compares a test sentence with pre-training text, so both must read a role alike.
    from prefine.corpus.builtin import normalise_sentence, strip_rest_markup

    for sentence in (
        "Use :meth:`~email.message.Message.get` and :func:`close()` here.",
        "See :ref:`the guide <guide-target>` and :py:data:`sys.path`, or ``os.sep``.",
        "Raise :exc:`ValueError` if :class:`list[int]` is empty.",
    ):
        words, _ = tag_sentence(sentence)
        assert normalise_sentence(" ".join(words)) == normalise_sentence(strip_rest_markup(sentence))
        assert not any(":" in word and "`" in word for word in words)
    assert tagged("Use :meth:`~email.message.Message.get` and :py:func:`json.loads`.") == [
        ("email.message.Message.get", "B-FUNC"),
        ("json.loads", "B-FUNC"),
    ]


def test_code_names_in_prose_are_typed_by_what_python_knows_and_calls_lose_their_parentheses():
    words, tags = tag_sentence("Call close() before the file is reused, or a StopIteration is raised; pass an int.")
    assert "close" in words and "close()" not in words and "(" not in words
    assert tagged("Call close() before the file is reused, or a StopIteration is raised; pass an int.") == [
        ("close", "B-FUNC"),
        ("StopIteration", "B-EXC"),
        ("int", "B-TYPE"),
    ]
    # Module names count only where the sentence names a module; "this module" and everyday words do not.
    assert tagged("import string and read the time module docs") == [("string", "B-MOD"), ("time", "B-MOD")]
    assert tagged("This is the time to list this module and its string.") == []


def test_the_task_is_stable_typed_and_keeps_test_sentences_out_of_pretraining():
    train, test = builtin_entity_task(max_train=400, max_test=100)
    assert (train, test) == builtin_entity_task(max_train=400, max_test=100)
    assert len(train) == 400 and len(test) == 100
    kinds = Counter(tag[2:] for _, tags in train + test for tag in tags if tag != "O")
    assert set(kinds) == set(ENTITY_TYPES)
    from prefine.corpus.builtin import builtin_pretraining_documents, normalise_sentence

    pretraining = {normalise_sentence(sentence) for document in builtin_pretraining_documents() for sentence in document}
    assert not any(normalise_sentence(" ".join(words)) in pretraining for words, _ in test)
    assert len({normalise_sentence(" ".join(words)) for words, _ in train + test}) == len(train) + len(test)
