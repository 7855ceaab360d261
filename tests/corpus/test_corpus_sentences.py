"""Sentence splitting: English abbreviations, decimals, initials and quotes; Korean endings; CJK."""

import pytest

from prefine.corpus import split_sentences


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mr. Smith arrived. Dr. Jones left.", ["Mr. Smith arrived.", "Dr. Jones left."]),
        ("Pi is 3.14 roughly. It is irrational.", ["Pi is 3.14 roughly.", "It is irrational."]),
        ("Use a codec, e.g. UTF-8, i.e. the default. Done.", ["Use a codec, e.g. UTF-8, i.e. the default.", "Done."]),
        ("Apples, pears etc. Are fruit.", ["Apples, pears etc. Are fruit."]),
        ("The U.S. Army marched. J. R. R. Tolkien wrote.", ["The U.S. Army marched.", "J. R. R. Tolkien wrote."]),
        ('She said "Stop." Then she left.', ['She said "Stop."', "Then she left."]),
        ("It ended (finally.) Next one.", ["It ended (finally.)", "Next one."]),
        ("Really?! Yes... Okay.", ["Really?!", "Yes...", "Okay."]),
        ("Well... maybe not. Fine!", ["Well... maybe not.", "Fine!"]),
        ("No terminator at the end", ["No terminator at the end"]),
        ("Wrapped\nline goes on. Next.", ["Wrapped line goes on.", "Next."]),
        ("First paragraph\n\nSecond paragraph", ["First paragraph", "Second paragraph"]),
        ("", []),
        ("   \n  ", []),
    ],
)
def test_english(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("배우들이 좋았다. 다시 보고 싶어요. 그렇죠? 감사합니다.", ["배우들이 좋았다.", "다시 보고 싶어요.", "그렇죠?", "감사합니다."]),
        ("이게 뭐죠?! 정말요… 대박이다!", ["이게 뭐죠?!", "정말요…", "대박이다!"]),
        ("재미있어요.정말 좋았어요.", ["재미있어요.", "정말 좋았어요."]),  # informal text drops the space
        ('그가 "가자." 라고 말했다. 끝.', ['그가 "가자." 라고 말했다.', "끝."]),
        ("버전 3.14 입니다. 좋아요.", ["버전 3.14 입니다.", "좋아요."]),
    ],
)
def test_korean(text, expected):
    assert split_sentences(text) == expected


def test_chinese_and_japanese_need_no_space():
    assert split_sentences("我们走吧。好的！你呢？") == ["我们走吧。", "好的！", "你呢？"]
    assert split_sentences("今日は晴れ。明日は雨。") == ["今日は晴れ。", "明日は雨。"]
