"""Writes generated text into docs/PERFORMANCE.md between its markers (`<!-- make bench: report -->` ...
`<!-- /make bench: report -->`), so that `make bench` and `make profile` keep the page's quotes current and
tests/test_figures.py can check them against the JSON files."""

from __future__ import annotations

from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "PERFORMANCE.md"


def replace_section(name: str, text: str, page: Path = PAGE) -> None:
    content = page.read_text()
    start, end = f"<!-- {name} -->\n", f"<!-- /{name} -->\n"
    before, rest = content.split(start, 1)
    _, after = rest.split(end, 1)
    page.write_text(before + start + text.rstrip("\n") + "\n" + end + after)
