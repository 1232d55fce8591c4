"""Small-cell suppression for everything the report displays.

Policy (study.toml ``[report].min_cell_count``, default 11): a count from 1 to
``min_cell_count - 1`` is never displayed; it is shown as ``"<11"``. Zero is shown (a zero cell
identifies nobody). Sources: CMS cell size suppression policy (ResDAC: no cell of 1-10 may be
displayed) and the PhysioNet credentialed data use agreement of MIMIC-IV (share aggregate results
only; no attempt to re-identify).

Primary suppression alone is not enough: a hidden count can often be worked out from the shown
ones. *Complementary* suppression hides more cells so that it cannot:

* :func:`suppress_cells` takes cells and additive relations ``total = sum(parts)`` (e.g. a group
  size and its categories, a row total and its columns) and hides further cells until, in every
  relation, no hidden cell can be solved for exactly and the hidden parts do not add up to a
  small count;
* :func:`chain_visible` handles nested counts (an attrition flow, numbers at risk): two shown
  counts of one chain must not differ by a small amount, because the difference is itself a
  count (patients excluded, patients who left the risk set);
* :func:`share_ok` says when a percentage may be shown: its numerator, denominator and their
  difference (the complement) must all be zero or at least the threshold.

Secondary (complementary) cells are displayed as ``"*"``, never as ``"<11"``: they are not small.

Those rules work inside one table. Across the report, :class:`ReportCounts` makes the final
decision: every count and percentage a section formats through a policy carrying a registry
comes back as a placeholder; once every section is built, the registry decides which counts
may be shown so that no two figures shown anywhere in the report (cohort flow, tables, model
rows, at-risk rows) differ by 1 to ``min_count - 1``, in the order they were registered (the
cohort flow first), and puts the text in place of the placeholders. When it withholds counts,
the report's sections are built a second time with those counts marked ``withheld``: tables
then treat them like hidden cells, and hide complements so they cannot be recomputed from a
total and its other parts. A new section that formats
its counts with ``policy.count`` / ``policy.percent`` is covered without doing anything.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SECONDARY_MARK = "*"


@dataclass(frozen=True)
class CellPolicy:
    """The display rule for counts. ``min_count``: smallest count that may be shown (11)."""

    min_count: int
    # Report-wide decision (see ReportCounts); None: counts are formatted directly.
    registry: "ReportCounts | None" = field(default=None, compare=False, repr=False)
    # Counts the report-wide decision withholds (not small, but within min_count of a count
    # shown elsewhere): treated as hidden cells by suppress_cells and chain_visible, so their
    # complements in a table are hidden too, and shown as "*".
    withheld: frozenset[int] = field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")

    @property
    def small_label(self) -> str:
        return f"<{self.min_count}"

    def is_small(self, n: int | None) -> bool:
        """True for a count that must not be displayed (1 .. min_count - 1)."""
        return n is not None and 0 < int(n) < self.min_count

    def is_withheld(self, n: int | None) -> bool:
        """True for a count the report-wide decision hides (see ``withheld``)."""
        return n is not None and int(n) in self.withheld

    def count(self, n: int | None, hidden: bool = False) -> str:
        """Display text of a count: ``"<11"`` when small, ``"*"`` when hidden by complementary
        suppression, ``"-"`` when unknown, else the number with thousands separators."""
        if n is None:
            return "-"
        if self.is_small(n):
            return self.small_label
        if hidden or self.is_withheld(n):
            return SECONDARY_MARK
        if self.registry is not None and int(n) != 0:
            return self.registry.count_token(int(n))
        return f"{int(n):,}"

    def share_ok(self, numerator: int | None, denominator: int | None) -> bool:
        """A percentage numerator / denominator may be shown: both known, denominator > 0, and
        none of numerator, denominator, denominator - numerator is a small count."""
        if numerator is None or denominator is None or denominator <= 0:
            return False
        if self.is_withheld(numerator) or self.is_withheld(denominator):
            return False
        return not any(self.is_small(v) for v in (numerator, denominator, denominator - numerator))

    def percent(self, numerator: int | None, denominator: int | None, digits: int = 1,
                hidden: bool = False) -> str:
        """``"12.3%"`` or ``"-"`` when the share would reveal a small count (or is hidden)."""
        if hidden or not self.share_ok(numerator, denominator):
            return "-"
        if self.registry is not None:
            return self.registry.percent_token(int(numerator), int(denominator), digits)
        return f"{100.0 * numerator / denominator:.{digits}f}%"


_TOKEN = re.compile("\ue000(\\d+)\ue001")


class ReportCounts:
    """The counts of one report, decided together (see module docs).

    ``count_token(n)`` / ``percent_token(n, d)`` return placeholders (private-use characters
    around an index, untouched by HTML escaping); ``resolve(data)`` replaces them in every
    string of a nested dict/list. A count is shown when it equals, or differs by at least
    ``min_count`` from, every count already kept (registration order); otherwise it becomes
    ``"*"``. A percentage shows its numerator and denominator (with the denominator it gives
    the numerator back), so it is shown only when both can be kept; otherwise ``"-"``.

    >>> reg = ReportCounts(11)
    >>> p = CellPolicy(11, reg)
    >>> reg.resolve([p.count(12), p.count(11), p.count(40), p.percent(12, 40)])
    ['12', '*', '40', '30.0%']
    """

    def __init__(self, min_count: int) -> None:
        self.min_count = int(min_count)
        self._entries: list[tuple[int, ...]] = []  # (n,) or (n, d, digits)
        self._text: dict[int, str] | None = None
        self.shown_values: set[int] = set()

    def count_token(self, n: int) -> str:
        self._entries.append((n,))
        return f"\ue000{len(self._entries) - 1}\ue001"

    def percent_token(self, numerator: int, denominator: int, digits: int = 1) -> str:
        self._entries.append((numerator, denominator, digits))
        return f"\ue000{len(self._entries) - 1}\ue001"

    def _fits(self, values: Sequence[int], kept: set[int]) -> bool:
        for v in values:
            if v == 0 or v in kept:
                continue
            if any(0 < abs(v - u) < self.min_count for u in kept if u != 0):
                return False
        # the values among themselves (numerator and denominator of one percentage)
        return not any(0 < abs(a - b) < self.min_count for a in values for b in values if a and b)

    def decide(self) -> dict[int, str]:
        """Text of every placeholder (computed once, when the report is complete)."""
        if self._text is not None:
            return self._text
        kept: set[int] = set()
        text: dict[int, str] = {}
        for i, entry in enumerate(self._entries):
            values = entry[:1] if len(entry) == 1 else entry[:2]
            if not self._fits(values, kept):
                text[i] = SECONDARY_MARK if len(entry) == 1 else "-"
                continue
            kept.update(v for v in values if v)
            if len(entry) == 1:
                text[i] = f"{entry[0]:,}"
            else:
                n, d, digits = entry
                text[i] = f"{100.0 * n / d:.{digits}f}%"
        self._text, self.shown_values = text, kept
        return text

    def withheld_values(self) -> frozenset[int]:
        """Registered counts the decision hides: a second pass of the sections with
        ``CellPolicy(withheld=...)`` hides them as cells, so table relations (total = parts)
        hide a complement and a withheld count cannot be recovered by subtraction in its table."""
        self.decide()
        out = set()
        for entry in self._entries:
            values = entry[:1] if len(entry) == 1 else entry[:2]
            out.update(v for v in values if v and v not in self.shown_values
                       and not self._fits([v], self.shown_values))
        return frozenset(out)

    def resolve(self, data: Any) -> Any:
        """``data`` with every placeholder replaced by its decided text."""
        text = self.decide()
        if isinstance(data, str):
            return _TOKEN.sub(lambda m: text[int(m.group(1))], data) if "\ue000" in data else data
        if isinstance(data, Mapping):
            return {k: self.resolve(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.resolve(v) for v in data]
        if isinstance(data, tuple):
            return tuple(self.resolve(v) for v in data)
        if hasattr(data, "__dataclass_fields__") and not isinstance(data, type):
            import dataclasses

            return dataclasses.replace(data, **{f: self.resolve(getattr(data, f))
                                                for f in data.__dataclass_fields__})
        return data


def suppress_cells(
    cells: Mapping[Hashable, int],
    relations: Sequence[tuple[Hashable, Sequence[Hashable]]],
    policy: CellPolicy,
    implied: Collection[Hashable] = (),
) -> set[Hashable]:
    """Keys of the cells that must be hidden (small ones and their complements).

    ``relations``: ``(total_key, part_keys)`` with ``cells[total] == sum(cells[parts])`` (a part
    may be a cell that is never displayed but is implied, e.g. "male" when "female" and the group
    size are shown; it is still listed so the rule sees it). Iterates until stable:

    1. exactly one hidden cell in a relation -> it is solvable: hide the smallest positive
       shown part (or the total when no part is left);
    2. total shown and the hidden parts sum to a small count -> that sum is revealed: same.

    ``implied``: cells that are never displayed (e.g. "male", "outcome unknown"); they are hidden
    first when a complement is needed, so a displayed number is hidden only when no implied one
    will do. Deterministic: ties between equal parts are broken by ``str(key)``.

    >>> p = CellPolicy(11)
    >>> sorted(suppress_cells({"n": 40, "f": 3, "m": 37}, [("n", ["f", "m"])], p))
    ['f', 'm']
    """
    for total, parts in relations:
        for key in (total, *parts):
            if key not in cells:
                raise KeyError(f"relation refers to unknown cell {key!r}")
    implied_set = set(implied)
    hidden = {k for k, v in cells.items() if policy.is_small(v) or policy.is_withheld(v)}
    changed = True
    while changed:
        changed = False
        for total, parts in relations:
            members = [total, *parts]
            n_hidden = sum(1 for k in members if k in hidden)
            if n_hidden == 0:
                continue
            hidden_sum = sum(int(cells[k]) for k in parts if k in hidden)
            solvable = n_hidden == 1 and (total in hidden or hidden_sum > 0)
            sum_small = total not in hidden and policy.is_small(hidden_sum)
            if not (solvable or sum_small):
                continue
            candidates = sorted(
                (k for k in parts if k not in hidden and int(cells[k]) > 0),
                key=lambda k: (k not in implied_set, int(cells[k]), str(k)),
            )
            if candidates:
                hidden.add(candidates[0])
            elif total not in hidden and int(cells[total]) > 0:
                hidden.add(total)
            else:
                continue
            changed = True
    return hidden


def chain_visible(values: Sequence[int], policy: CellPolicy, keep: str = "last") -> list[bool]:
    """Which counts of a nested chain may be shown (see module docs).

    ``values`` are counts where every pair's difference is itself a count (attrition steps,
    numbers at risk of one group over time). ``keep="last"`` walks from the end so the final
    cohort size is preferred; ``keep="first"`` from the start (numbers at risk: the group size).
    A value is shown when it is not small and differs from every shown value by zero or at
    least ``min_count``.

    >>> chain_visible([140, 26, 14, 12], CellPolicy(11))
    [True, True, False, True]
    """
    order = list(range(len(values)))
    if keep == "last":
        order.reverse()
    elif keep != "first":
        raise ValueError("keep must be 'first' or 'last'")
    shown: list[int] = []
    visible = [False] * len(values)
    for i in order:
        v = values[i]
        if v is None or policy.is_small(v) or policy.is_withheld(v):
            continue
        if any(policy.is_small(abs(int(v) - int(values[j]))) for j in shown):
            continue
        shown.append(i)
        visible[i] = True
    return visible


_INT = re.compile(r"(?<![\w.,<>])(\d{1,3}(?:,\d{3})+|\d+)(?![\w.,])")
# Small integers that are followed by one of these are settings (times, doses, rule lengths),
# not counts of patients or rows.
_UNIT_AFTER = re.compile(
    r"\s*(?:-?(?:h|hours?|days?|d|min|minutes?|mcg|U|units|mL|mmHg|mmol|mg|%|sigma|years?|"
    r"successive|in a row|of \d)\b|%)"
)


def small_integers_in(text: str, policy: CellPolicy) -> list[str]:
    """Standalone integers of ``text`` that are small counts (for tests and self-checks).

    Skips decimals (0.5), numbers inside words or identifiers, ``<11`` itself and integers
    directly followed by a unit (``6 h``, ``28-day``, ``3 sigma``). A found integer is returned
    with a little context.
    """
    found = []
    for m in _INT.finditer(text):
        value = int(m.group(1).replace(",", ""))
        if not policy.is_small(value):
            continue
        if _UNIT_AFTER.match(text, m.end()):
            continue
        found.append(text[max(0, m.start() - 30): m.end() + 30])
    return found
