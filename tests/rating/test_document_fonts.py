"""Every text a PDF prints from the translations can be drawn by the fonts it embeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from fontTools.ttLib import TTFont

from billing.documents.localize import LANGUAGES, TEXTS_DIR
from billing.documents.render import FONTS_DIR


@cache
def glyphs(font: str) -> frozenset[int]:
    return frozenset(TTFont(FONTS_DIR / font).getBestCmap())


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_translated_text_has_its_glyphs_in_the_embedded_fonts(language: str) -> None:
    """The PDF embeds Noto Sans, and Noto Sans CJK for Korean (``render._add_fonts``): a
    character neither has is printed as an empty box (the prepaid credit's arrow was)."""
    drawable = glyphs("NotoSans-Regular.ttf") & glyphs("NotoSans-Bold.ttf")
    if language == "ko":
        drawable |= glyphs("NotoSansCJKkr-Regular.ttf") & glyphs("NotoSansCJKkr-Bold.ttf")
    texts = json.loads((TEXTS_DIR / f"{language}.json").read_text(encoding="utf-8"))
    missing = {
        (char, text) for text in strings(texts) for char in text if ord(char) not in drawable
    }
    assert not missing, sorted(missing)
