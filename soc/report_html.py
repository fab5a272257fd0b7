"""The national report as one self-contained HTML file (charts are PNG data URIs).

Self-contained because it is mailed to the ministry and opened offline: no script, no external
stylesheet or image. Charts are drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")  # before pyplot: servers and CI have no display
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from soc.report import NationalReport

MALICIOUS = "#c0392b"
OTHER = "#2c7fb8"
GREY = "#95a5a6"
ORIGIN_LABELS = {"malicious": "malicious", "non_malicious": "non-malicious",
                 "unknown": "unknown"}
#: The four grounds of the reporting obligation, in the law's words (``availability`` is the
#: category "availability" elsewhere: the labels are per chart, not global).
IMPACT_LABELS = {"care_safety": "patient care safety",
                 "confidentiality": "confidentiality of health data",
                 "integrity": "integrity of health data", "availability": "normal functioning"}


def _label(key: str, labels: dict[str, str] | None = None) -> str:
    return (labels or {}).get(key, key.replace("_", " "))


def _png(draw: Callable[[Axes], None], size: tuple[float, float] = (7.0, 3.6)) -> str:
    fig, ax = plt.subplots(figsize=size, dpi=110)
    try:
        draw(ax)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _barh(data: dict[str, int], color: str = OTHER,
          labels: dict[str, str] | None = None) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        items = sorted(data.items(), key=lambda kv: kv[1])
        if not items:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            return
        # Numeric positions, then tick labels: category axes guess at "2018-01"-like strings.
        positions = list(range(len(items)))
        bars = ax.barh(positions, [v for _, v in items], color=color)
        ax.set_yticks(positions, [_label(k, labels) for k, _ in items])
        ax.bar_label(bars, padding=3, fontsize=8)
        ax.set_xlabel("incidents")
        ax.tick_params(axis="y", labelsize=8)
    return draw


def _donut(parts: dict[str, int], colors: list[str]) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        values = [v for v in parts.values()]
        if not sum(values):
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            ax.axis("off")
            return
        ax.pie(values, labels=[f"{_label(k, ORIGIN_LABELS)}\n{v}" for k, v in parts.items()],
               colors=colors[:len(values)], autopct="%1.0f %%", pctdistance=0.78,
               startangle=90, counterclock=False, wedgeprops={"width": 0.42})
        ax.set_aspect("equal")
    return draw


def _monthly(report: NationalReport) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        positions = list(range(len(report.monthly)))
        malicious = [m.malicious for m in report.monthly]
        others = [m.incidents - m.malicious for m in report.monthly]
        ax.bar(positions, malicious, color=MALICIOUS, label="malicious")
        ax.bar(positions, others, bottom=malicious, color=OTHER, label="other origins")
        ax.set_xticks(positions, [m.month for m in report.monthly])
        ax.set_ylabel("incidents")
        ax.legend(frameon=False, fontsize=8)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return draw


def charts(report: NationalReport) -> dict[str, str]:
    """Chart title → PNG data URI, in the order the report shows them."""
    reporters = {"health establishments": report.from_health_establishments,
                 "other structures": report.incidents - report.from_health_establishments}
    origins = {k: report.by_origin.get(k, 0) for k in ("malicious", "non_malicious", "unknown")
               if report.by_origin.get(k, 0)}
    return {
        "Incidents per month, by origin": _png(_monthly(report), (9.0, 3.6)),
        "Origin of incidents": _png(_donut(origins, [MALICIOUS, OTHER, GREY]), (4.6, 3.6)),
        "Who reported": _png(_donut(reporters, ["#27ae60", "#f39c12"]), (4.6, 3.6)),
        "By category (ENISA taxonomy and non-malicious causes)": _png(
            _barh(report.by_category), (7.0, 4.2)),
        "By region": _png(_barh(report.by_region), (7.0, 4.8)),
        "By type of structure": _png(_barh(report.by_establishment_type), (7.0, 3.2)),
        "Consequences (the four grounds for a mandatory report)": _png(
            _barh(report.by_impact, MALICIOUS, IMPACT_LABELS), (7.0, 2.6)),
        f"Top {len(report.top_techniques)} ATT&CK techniques": _png(
            _barh(report.top_techniques, "#8e44ad"), (7.0, 3.4)),
    }


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1000px;
color:#222}h1{margin-bottom:.2rem}.sub{color:#666;margin-top:0}
.kpis{display:flex;flex-wrap:wrap;gap:1rem;margin:1.5rem 0}.kpi{border:1px solid #ddd;
border-radius:8px;padding:.8rem 1.2rem;min-width:160px}.kpi b{font-size:1.8rem;display:block}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}figure{margin:0}figcaption{font-weight:600;
margin-bottom:.3rem}img{max-width:100%}table{border-collapse:collapse;margin:1rem 0}
td,th{border-bottom:1px solid #eee;padding:.2rem .8rem;text-align:left}
"""


def render_html(report: NationalReport) -> str:
    """The whole report; every value is escaped (establishment names are data, not markup)."""
    e = html.escape
    kpis = [
        ("incidents", f"{report.incidents}"),
        ("malicious origin", f"{report.malicious_share:.1f} %"),
        ("reported by health establishments", f"{report.health_establishment_share:.1f} %"),
        ("structures reporting", f"{report.reporting_structures}"),
        ("declarable", f"{report.declarable}"),
        ("national campaigns", f"{report.national_campaigns}"),
    ]
    kpi_html = "".join(f'<div class="kpi"><b>{e(v)}</b>{e(k)}</div>' for k, v in kpis)
    figures = "".join(f'<figure><figcaption>{e(title)}</figcaption><img alt="{e(title)}" '
                      f'src="{uri}"></figure>' for title, uri in charts(report).items())
    rows = "".join(f"<tr><td>{e(m.month)}</td><td>{m.incidents}</td><td>{m.malicious}</td></tr>"
                   for m in report.monthly)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Vigie national report {e(report.period_from)} – {e(report.period_to)}</title>
<style>{_CSS}</style></head><body>
<h1>National situation of health information-security incidents</h1>
<p class="sub">Incidents first seen from {e(report.period_from)} to {e(report.period_to)}
(end excluded); establishment incidents only, national campaigns counted apart.
Sources: {e(", ".join(f"{k} {v}" for k, v in report.by_reported_via.items()) or "none")}.</p>
<div class="kpis">{kpi_html}</div>
<p>{report.reporting_structures} structures reported, of which
{report.reporting_health_establishments} health establishments;
{report.other_structures_share:.1f} % of incidents came from other structures
(health professionals' practices, other health and medico-social structures).</p>
<div class="charts">{figures}</div>
<h2>Monthly trend</h2>
<table><tr><th>month</th><th>incidents</th><th>malicious</th></tr>{rows}</table>
</body></html>
"""
