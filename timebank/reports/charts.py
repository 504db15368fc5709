"""Charts drawn on the server as inline SVG: no script, no chart library, nothing from the internet.

They print sharply, work in any browser and read the same with JavaScript off.
"""

from __future__ import annotations

from markupsafe import Markup, escape

#: Colour per series key: the point categories, then redemption. Dark enough for white text around.
COLORS = {
    "volunteer": "#0b4a8f",
    "red": "#b3261e",
    "moral": "#0b6b2e",
    "neighbour_help": "#8a5a00",
    "redeemed": "#5b3a8c",
}


def _nice_max(value: int) -> int:
    """A round top for the axis: 1, 2, 5 times a power of ten."""
    if value <= 0:
        return 10
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def month_bars(months: list[str], stacks: list[tuple[str, str, list[int]]], single: tuple[str, str, list[int]],
               title: str, width: int = 640, height: int = 340) -> Markup:
    """Per month: one stacked bar of ``stacks`` (key, label, values) and one bar of ``single`` beside it.

    Used for points issued by category (stacked) next to points redeemed.
    """
    left, right, top, bottom = 64, 12, 26, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s[2][i] for s in stacks) for i in range(len(months))]
    peak = _nice_max(max(totals + single[2] + [0]))
    group = plot_w / max(1, len(months))
    bar = min(44.0, group * 0.34)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="19">',
             f"<title>{escape(title)}</title>"]
    for step in range(5):
        value = peak * step // 4
        y = top + plot_h - plot_h * step / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#cfd6de"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 5:.1f}" text-anchor="end" fill="#333">{value}</text>')
    for i, month in enumerate(months):
        x0 = left + group * i + (group - 2 * bar - 6) / 2
        y = top + plot_h
        for key, label, values in stacks:
            value = values[i]
            if value <= 0:
                continue
            h = plot_h * value / peak
            y -= h
            parts.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS.get(key, "#555")}">'
                         f"<title>{escape(month)} {escape(label)}: {value}</title></rect>")
        if totals[i]:
            parts.append(f'<text x="{x0 + bar / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                         f'fill="#111">{totals[i]}</text>')
        value = single[2][i]
        if value > 0:
            h = plot_h * value / peak
            x1 = x0 + bar + 6
            parts.append(f'<rect x="{x1:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{COLORS.get(single[0], "#555")}">'
                         f"<title>{escape(month)} {escape(single[1])}: {value}</title></rect>")
            parts.append(f'<text x="{x1 + bar / 2:.1f}" y="{top + plot_h - h - 4:.1f}" text-anchor="middle" '
                         f'fill="#111">{value}</text>')
        parts.append(f'<text x="{left + group * i + group / 2:.1f}" y="{height - bottom + 24}" text-anchor="middle" '
                     f'fill="#111">{escape(month)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#111"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def legend(entries: list[tuple[str, str]]) -> Markup:
    """A legend as an HTML list (key, label), so it wraps on a phone."""
    items = "".join(f'<li><span class="swatch" style="background:{COLORS.get(k, "#555")}"></span>{escape(label)}</li>'
                    for k, label in entries)
    return Markup(f'<ul class="legend">{items}</ul>')


def community_bars(rows: list[tuple[str, list[tuple[str, str, int]], tuple[str, str, int]]], title: str,
                   width: int = 640) -> Markup:
    """One row per community: a stacked bar of points issued by category and, under it, a thinner bar
    of points redeemed. ``rows``: (community name, [(key, label, value)], (key, label, value)).

    Horizontal, so a sub-district of many communities stays readable on a phone: the names sit on
    the left, the bars grow to the right on one scale."""
    left, right, top, row_h = 150, 56, 12, 46
    plot_w = width - left - right
    height = top * 2 + row_h * max(1, len(rows))
    peak = _nice_max(max([sum(v for _k, _l, v in stack) for _n, stack, _s in rows]
                         + [single[2] for _n, _s, single in rows] + [0]))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="17">',
             f"<title>{escape(title)}</title>"]
    for step in range(5):
        x = left + plot_w * step / 4
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - top}" stroke="#cfd6de"/>')
    for i, (name, stack, single) in enumerate(rows):
        y = top + row_h * i
        parts.append(f'<text x="{left - 8}" y="{y + 20}" text-anchor="end" fill="#111">{escape(name)}</text>')
        x = float(left)
        for key, label, value in stack:
            if value <= 0:
                continue
            w = plot_w * value / peak
            parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="20" '
                         f'fill="{COLORS.get(key, "#555")}">'
                         f"<title>{escape(name)} {escape(label)}: {value}</title></rect>")
            x += w
        total = sum(v for _k, _l, v in stack)
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 20}" fill="#111">{total}</text>')
        key, label, value = single
        if value > 0:
            w = plot_w * value / peak
            parts.append(f'<rect x="{left}" y="{y + 27}" width="{w:.1f}" height="10" fill="{COLORS.get(key, "#555")}">'
                         f"<title>{escape(name)} {escape(label)}: {value}</title></rect>")
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - top}" stroke="#111"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
