"""Rule-based sentence splitting for English, Korean and CJK text, with no model or heavy dependency.

Next-sentence prediction needs sentence boundaries, and most raw corpora (reviews, JSONL records,
paragraphs) do not mark them. A sentence ends at . ! ? … 。 (or a run such as ?! or ...), plus any
closing quotes or brackets, when whitespace or the end of the text follows. The rules below keep
the usual false alarms together: abbreviations (Mr. e.g. U.S.), initials (J. R. R. Tolkien) and a
period followed by a lowercase word. Decimal numbers (3.14) never split because no space follows
the point. Korean sentences end in verb endings such as 다. 요. 죠. 까? and informal text often
omits the space after them, so a terminator after a Hangul syllable also splits before Hangul.
"""

from __future__ import annotations

import re

# Abbreviations that (almost) never end a sentence, compared lowercased and without the final
# period. A wrong split here breaks a sentence in two; a missed split merely makes one sentence
# longer, so the list errs on the side of not splitting.
ABBREVIATIONS = frozenset(
    """
    mr mrs ms mx dr prof sr jr st mt rev hon gen col lt sgt capt cmdr gov sen rep pres
    vs cf e.g i.e etc et al approx ca dept est fig figs eq eqs vol vols ch sec pp no nos
    jan feb mar apr jun jul aug sep sept oct nov dec
    inc ltd co corp bros assn univ
    u.s u.k u.n e.u a.m p.m ph.d b.a m.a b.sc m.sc
    """.split()
)

_TERMINATOR = re.compile(r"""(?:[.!?…]+|[。！？]+)["'”’»」』)\]]*""")
_FULLWIDTH_TERMINATORS = frozenset("。！？")
_CLOSING_QUOTES = tuple("\"'”’»」』")
# Korean quotative particles: in '그가 "가자." 라고 말했다' the quoted sentence continues.
_KOREAN_QUOTATIVES = ("라고", "이라고", "하고", "고 ", "라며", "하며", "라는", "하는")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_WHITESPACE = re.compile(r"\s+")


def _is_hangul(character: str) -> bool:
    return "\uac00" <= character <= "\ud7a3"


def _previous_word(text: str, position: int) -> str:
    """The whitespace-delimited word that ends at `position`, without leading brackets or quotes."""
    start = position
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return text[start:position].lstrip("\"'“‘«「『([")


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    terminator = match.group()
    end = match.end()
    following = text[end : end + 1]
    if terminator[0] in _FULLWIDTH_TERMINATORS:
        return True  # Chinese and Japanese put no space after 。 ！ ？
    if following and not following.isspace():
        # "좋아요.정말" — informal Korean often drops the space; "3.14", "a.b" and "U.S" stay whole.
        return match.start() > 0 and _is_hangul(text[match.start() - 1]) and _is_hangul(following)
    rest = text[end:].lstrip()
    if not rest:
        return True
    next_character = rest[0]
    if terminator.endswith(_CLOSING_QUOTES) and rest.startswith(_KOREAN_QUOTATIVES):
        return False
    if "." not in terminator and "…" not in terminator:
        return True  # ? and ! are unambiguous
    if next_character.islower():
        return False  # "approx. five", "Well... maybe": the sentence goes on
    if terminator.startswith(".") and len(terminator.rstrip("\"'”’»」』)]")) == 1:
        word = _previous_word(text, match.start())
        if word.lower() in ABBREVIATIONS:
            return False
        if len(word) == 1 and word.isupper():
            return False  # an initial, as in "J. K. Rowling"
    return True


def split_sentences(text: str) -> list[str]:
    """Split `text` into stripped, non-empty sentences; blank lines always end a sentence."""
    sentences = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = _WHITESPACE.sub(" ", paragraph).strip()
        start = 0
        for match in _TERMINATOR.finditer(paragraph):
            if _is_boundary(paragraph, match):
                sentence = paragraph[start : match.end()].strip()
                if sentence:
                    sentences.append(sentence)
                start = match.end()
        tail = paragraph[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences
