"""The documents name the tests behind their claims (the failure table above all): every
test they name exists, in the file they name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
CODE = re.compile(r"(`+)(.+?)\1", re.S)  # a Markdown code span, ``double`` ones included
IN_FILE = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?(?:\[[^\]]*\])?")
BARE = re.compile(r"(?:::)?(test_\w+)(?:\[[^\]]*\])?")


def defined_tests() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r"^\s*(?:async )?def (test_\w+)|^class (Test\w+)", text, re.M):
            found.setdefault(name[0] or name[1], set()).add(str(path.relative_to(ROOT)))
    return found


def named_tests(text: str) -> list[tuple[str | None, str | None]]:
    """(file, test) named by each code span that names a test or a test module; a
    ``::test_name`` right after a ``tests/x.py::...`` span is in the same file."""
    named: list[tuple[str | None, str | None]] = []
    last_file: str | None = None
    for span in CODE.finditer(text):
        code = span.group(2).strip()
        if m := IN_FILE.fullmatch(code):
            last_file = m.group(1)
            named.append((m.group(1), m.group(2)))
        elif m := BARE.fullmatch(code):
            named.append((last_file if code.startswith("::") else None, m.group(1)))
    return named


def test_the_span_parser_reads_what_the_documents_write() -> None:
    text = "x (`tests/a.py::test_one`, `::test_two`) and ``a `code` span`` then `test_three[x]`"
    assert named_tests(text) == [
        ("tests/a.py", "test_one"),
        ("tests/a.py", "test_two"),
        (None, "test_three"),
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_test_a_document_names_exists(document: Path) -> None:
    defined = defined_tests()
    missing = []
    for file, test in named_tests(document.read_text(encoding="utf-8")):
        if file is not None and not (ROOT / file).exists():
            missing.append(file)
        elif test is not None and file is not None and file not in defined.get(test, set()):
            missing.append(f"{file}::{test}")
        elif test is not None and file is None and test not in defined:
            missing.append(test)
    assert not missing, f"{document.name} names tests that do not exist: {missing}"
