"""The built-in named-entity task: code entities in Python's own documentation, with no download.

Standard-library docstrings talk about code in prose: "Raise ValueError if the :mod:`json`
module cannot decode it; call close() first." The names in such sentences have types a reader
infers from context and from what Python itself knows, so they can be labelled without a
human annotator:

* EXC: a built-in exception class (ValueError, StopIteration) or a CamelCase name ending in
  Error, Exception or Warning, and anything marked :exc:.
* MOD: a standard-library module named as a module: `import x`, `from x import`, "the x
  module", "module x" ("this module" excepted), a dotted name that is a standard-library module (os.path,
  email.message), and anything marked :mod:.
* FUNC: a name written as a call, `name()` (the parentheses are removed from the text, so the
  type has to come from the context), and anything marked :func: or :meth:.
* TYPE: a built-in type whose name is not also an everyday English word (int, str, bytes,
  dict, tuple, float, frozenset, complex, bool), and anything marked :class:.

reST markup is turned into plain text (":func:`len`" -> "len", "``x``" -> "x") by the same
`strip_rest_markup` that cleans the pre-training text, so a sentence reads the same in both. Words
are split off punctuation the way CoNLL data is, and tags are IOB2; every entity is one word (a
dotted name such as os.path.join is one word).
Sentences come from the same pretrain / task-test split as the classification task
(`builtin_split`): test sentences come from "task-test" docstrings, and the built-in pre-training
corpus leaves out every sentence of those (compared after `normalise_sentence`) and the roles
these labels come from, so the test sentences are text pre-training never saw.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import re
import sys

from prefine.corpus.builtin import _parsed_stdlib_docstrings, _stdlib_sources, builtin_split, normalise_sentence, strip_rest_markup

ENTITY_TYPES = ("EXC", "FUNC", "MOD", "TYPE")
_ROLE_TYPES = {"exc": "EXC", "func": "FUNC", "meth": "FUNC", "mod": "MOD", "class": "TYPE"}
# A word: a dotted name with an optional call "()" (kept together so it can be typed), or one punctuation mark.
_WORD = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*(?:\(\))?|\d+(?:\.\d+)?|[^\w\s]")
_UNAMBIGUOUS_TYPES = frozenset({"int", "str", "bytes", "bytearray", "dict", "tuple", "float", "frozenset", "complex", "bool", "memoryview"})
_EXCEPTION_SUFFIX = re.compile(r"^[A-Z][A-Za-z]*(Error|Exception|Warning)$")
_NOT_MODULES = frozenset({"this"})  # the easter-egg module: "this module" means the one being documented
_MARK = "\u0001"  # brackets a role's text while the sentence is split into words


@functools.lru_cache(maxsize=1)
def _builtin_exceptions() -> frozenset[str]:
    return frozenset(name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException))


@functools.lru_cache(maxsize=1)
def _stdlib_modules() -> frozenset[str]:

    dotted = {".".join(parts) for _, parts in _stdlib_sources()}
    return frozenset(dotted | set(sys.stdlib_module_names) | {"os.path"})


def _plain(text: str) -> str:
    """reST roles and literals as plain text; a role's text is bracketed by _MARK + type so it keeps its type."""

    def role(kind: str, name: str) -> str:
        entity_type = _ROLE_TYPES.get(kind)
        return f" {_MARK}{entity_type}{_MARK}{name}{_MARK} " if entity_type else name

    return strip_rest_markup(text, role)


def _type_of(word: str, previous: str, following: str) -> str | None:
    name = word.removesuffix("()")
    modules = _stdlib_modules()
    if name in _builtin_exceptions() or _EXCEPTION_SUFFIX.match(name):
        return "EXC"
    if word.endswith("()"):
        return "FUNC"
    named_as_module = previous in ("import", "module") or (previous == "from" and following == "import") or following == "module"
    if name in modules and name not in _NOT_MODULES and ("." in name or named_as_module):
        return "MOD"
    if name in _UNAMBIGUOUS_TYPES:
        return "TYPE"
    return None


def tag_sentence(sentence: str) -> tuple[list[str], list[str]]:
    """Words and IOB2 tags of one documentation sentence (see the module docstring for the rules)."""
    words: list[str] = []
    kinds: list[str | None] = []
    for part in re.split(f"({_MARK}\\w+{_MARK}[^{_MARK}]*{_MARK})", _plain(sentence)):
        if part.startswith(_MARK):
            _, kind, name, _ = part.split(_MARK)
            found = _WORD.findall(name)
            words += found
            # A role over one name is an entity; over a phrase (":class:`list[int]`") it is left as plain words.
            kinds += [kind] if len(found) == 1 else [None] * len(found)
            continue
        found = _WORD.findall(part)
        for index, word in enumerate(found):
            previous = found[index - 1] if index else (words[-1] if words else "")
            following = found[index + 1] if index + 1 < len(found) else ""
            words.append(word)
            kinds.append(_type_of(word, previous, following))
    tags = ["O" if kind is None else f"B-{kind}" for kind in kinds]  # every entity is one (possibly dotted) word
    # Calls lose their parentheses: the model must tell a function from context, not from "()".
    return [word.removesuffix("()") or word for word in words], tags


def builtin_entity_task(
    max_train: int = 3000, max_test: int = 600, max_words: int = 60
) -> tuple[list[tuple[list[str], list[str]]], list[tuple[list[str], list[str]]]]:
    """(train, test) lists of (words, tags): documentation sentences holding at least one entity.

    Train comes from the "pretrain" docstrings and test from the "task-test" ones, none of whose
    sentences the built-in pre-training corpus reads (see `builtin.remove_leaks`). A sentence is
    taken once: the same one can open many docstrings ("Return a copy."), and a test sentence that
    equals a training one after `normalise_sentence` would not be unseen. Sentences are taken in a
    fixed hash order (stable across runs); those longer than `max_words` words are skipped.
    """
    train: list[tuple[list[str], list[str]]] = []
    test: list[tuple[list[str], list[str]]] = []
    taken: set[str] = set()
    docstrings = sorted(_parsed_stdlib_docstrings(), key=lambda item: hashlib.sha256(item[0].qualified_name.encode()).hexdigest())
    for docstring, sentences in docstrings:
        held_out = builtin_split(docstring) == "task-test"
        target, limit = (test, max_test) if held_out else (train, max_train)
        for sentence in sentences:
            if len(target) >= limit:
                continue
            key = normalise_sentence(sentence)
            if key in taken:
                continue
            words, tags = tag_sentence(sentence)
            if words and len(words) <= max_words and any(tag != "O" for tag in tags):
                taken.add(key)
                target.append((words, tags))
        if len(train) >= max_train and len(test) >= max_test:
            break
    return train, test
