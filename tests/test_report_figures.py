"""Figures are drawn once per report, after the disclosure-control passes (issue 16): inside
``deferred_figures()`` a figure function returns a placeholder, and ``draw_deferred`` swaps each
for the PNG the same call draws outside the block, drawing every distinct figure once."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.report import figures


@dataclass(frozen=True)
class _Holder:
    img: str
    note: str = "kept"


def _hist(heights):
    return figures.histogram_png([0.0, 1.0, 2.0, 3.0], heights, xlabel="x", thresholds=[(1.5, "t")],
                                 small_label="<11", small_height=0.5, overflow_label=">3", dpi=40)


def test_deferred_figures_are_the_same_pngs_drawn_once_each(monkeypatch):
    direct_a, direct_b = _hist([5, 7, 9]), _hist([5, 0, 9])
    assert direct_a.startswith("data:image/png;base64,") and direct_a != direct_b
    calls = []
    real_png = figures._png
    monkeypatch.setattr(figures, "_png", lambda fig, dpi: calls.append(dpi) or real_png(fig, dpi))
    with figures.deferred_figures():
        a1, a2, b = _hist([5, 7, 9]), _hist([5, 7, 9]), _hist([5, 0, 9])
        assert a1 == a2 != b and not a1.startswith("data:")
        assert calls == []  # nothing is drawn while the report is being assembled
        data = {"km": {"img": a1, "rows": [a2, ("x", b)]}, "holder": _Holder(img=b), "n": 3}
        out = figures.draw_deferred(data)
    assert len(calls) == 2  # two distinct figures, each drawn once
    assert out["km"]["img"] == out["km"]["rows"][0] == direct_a
    assert out["km"]["rows"][1] == ("x", direct_b)
    assert out["holder"] == _Holder(img=direct_b) and out["n"] == 3


def test_a_figure_left_out_of_the_final_data_is_never_drawn(monkeypatch):
    calls = []
    real_png = figures._png
    monkeypatch.setattr(figures, "_png", lambda fig, dpi: calls.append(dpi) or real_png(fig, dpi))
    with figures.deferred_figures():
        _hist([1, 2, 3])  # an earlier pass's figure, replaced before the end
        kept = _hist([11, 12, 13])
        out = figures.draw_deferred({"img": kept})
    assert len(calls) == 1 and out["img"].startswith("data:image/png;base64,")


def test_figures_drawn_on_worker_processes_are_the_same_bytes():
    """Issue 16: with several figures, draw_deferred draws them on forked workers; the report
    must not depend on how many there were."""
    heights = [[i, i + 1, i + 2] for i in range(1, 1 + figures.MIN_FIGURES_PER_POOL)]
    results = []
    for workers in (1, 2):
        with figures.deferred_figures():
            data = {"imgs": [_hist(h) for h in heights]}
            results.append(figures.draw_deferred(data, workers=workers))
    assert results[0] == results[1]
    assert all(img.startswith("data:image/png;base64,") for img in results[0]["imgs"])
    assert len(set(results[0]["imgs"])) == len(heights)
