"""p-chart drawing for the report: one PNG per audit rule (matplotlib, Agg backend)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display: the report embeds the bytes
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402


def p_chart_png(spc: pl.DataFrame, rule: str, *, title: str | None = None, dpi: int = 110) -> bytes:
    """PNG bytes of the p-chart of ``rule`` from an ``audit_spc`` frame: adherence per period
    (percent), centre line, 3-sigma limits as steps (they vary with n), special-cause points in
    red. Periods with no assessed patient are left out."""
    rows = spc.filter((pl.col("rule") == rule) & pl.col("p").is_not_null()).sort("period")
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    try:
        if rows.is_empty():
            ax.text(0.5, 0.5, "no patient assessed", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        else:
            x = list(range(rows.height))
            pct = lambda col: [None if v is None else 100.0 * v for v in rows[col].to_list()]  # noqa: E731
            ax.step(x, pct("ucl"), where="mid", color="grey", linestyle="--", linewidth=1, label="3-sigma limits")
            ax.step(x, pct("lcl"), where="mid", color="grey", linestyle="--", linewidth=1)
            ax.plot(x, pct("centre_line"), color="black", linewidth=1, label="centre line")
            ax.plot(x, pct("p"), color="tab:blue", marker="o", linewidth=1.2, label="adherence")
            special = rows["is_special_cause"].fill_null(False).to_list()
            sx = [xi for xi, s in zip(x, special) if s]
            sy = [y for y, s in zip(pct("p"), special) if s]
            if sx:
                ax.plot(sx, sy, linestyle="none", marker="o", color="tab:red", label="special cause")
            labels = [f"{p}\n(n={n})" for p, n in zip(rows["period"].to_list(), rows["n"].to_list())]
            ax.set_xticks(x, labels, fontsize=7)
            ax.set_ylim(-2, 102)
            ax.set_ylabel("adherence (%)")
            ax.legend(fontsize=7, loc="lower left")
        ax.set_title(title or f"p-chart: {rule}", fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()
    finally:
        plt.close(fig)
