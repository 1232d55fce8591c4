"""The counts a rendered report displays, read back from its HTML (for the disclosure tests):
every integer in a table cell, outside subtrees marked ``data-nocount`` (settings, citations),
that is not part of an identifier or decimal and not followed by a unit (``18 years``,
``15 mcg/min``, ``6 h``)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from itertools import combinations

from pipeline.report.suppress import _INT, _UNIT_AFTER

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.skip: list[bool] = []
        self.cell: list[str] | None = None
        self.cells: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        skip = (self.skip and self.skip[-1]) or tag in ("style", "script") or any(k == "data-nocount" for k, _ in attrs)
        self.skip.append(bool(skip))
        if tag == "td" and not skip:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if tag == "td" and self.cell is not None:
            self.cells.append("".join(self.cell))
            self.cell = None
        if self.skip:
            self.skip.pop()

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def displayed_counts(html: str) -> list[int]:
    parser = _Cells()
    parser.feed(html)
    counts = []
    for text in parser.cells:
        for m in _INT.finditer(text):
            if _UNIT_AFTER.match(text, m.end()) or re.match(r"\s*[-–]\s*\d", text[m.end():]):
                continue  # a setting with its unit, or a range such as 0.12-0.51 (not a count)
            counts.append(int(m.group(1).replace(",", "")))
    return counts


def small_differences(counts: list[int], min_count: int) -> list[tuple[int, int]]:
    """Pairs of displayed counts whose difference is a small count (1 .. min_count - 1)."""
    values = sorted(set(counts))
    return [(a, b) for a, b in combinations(values, 2) if 0 < b - a < min_count]
