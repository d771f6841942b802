"""The SVG chart of a run: throughput per scenario and latency percentiles at a fixed rate,
one colour per contender. Written by hand, so the runner needs no plotting package."""

from __future__ import annotations

from html import escape

COLOURS = {"direct": "#9e9e9e", "portcullis": "#1b7f3b", "envoy": "#c2452d",
           "haproxy": "#2f5fa7"}
WIDTH = 960
PANEL_HEIGHT = 300
MARGIN_LEFT = 80
MARGIN_TOP = 40
FONT = 'font-family="sans-serif"'


def render(document: dict) -> str:
    scenarios = document["scenarios"]
    contenders = [name for name in COLOURS if any(name in results
                                                  for results in scenarios.values())]
    throughput = [name for name in scenarios if name != "fixed_rate"]
    # `direct` is often ten times any proxy and would flatten their bars; the table has it.
    proxies = [name for name in contenders if name != "direct"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
             f'height="{2 * PANEL_HEIGHT + 3 * MARGIN_TOP + 30}" '
             f'viewBox="0 0 {WIDTH} {2 * PANEL_HEIGHT + 3 * MARGIN_TOP + 30}">',
             f'<rect width="100%" height="100%" fill="white"/>']
    parts += _bar_panel(
        title="Proxy throughput, requests per second (higher is better)",
        top=MARGIN_TOP,
        groups=throughput,
        series=proxies,
        value=lambda group, series: scenarios.get(group, {}).get(series, {}).get("rps"))

    latency_source = "fixed_rate" if "fixed_rate" in scenarios else "repeated_token"
    results = scenarios.get(latency_source, {})
    rate = next((r.get("rate") for r in results.values() if r.get("rate")), None)
    suffix = f"at {rate} requests per second" if rate else "in repeated_token"
    parts += _bar_panel(
        title=f"Latency in ms {suffix} (lower is better)",
        top=2 * MARGIN_TOP + PANEL_HEIGHT,
        groups=["p50_ms", "p90_ms", "p99_ms"],
        series=contenders,
        value=lambda group, series: results.get(series, {}).get(group))

    legend_y = 2 * PANEL_HEIGHT + 3 * MARGIN_TOP + 10
    for index, name in enumerate(contenders):
        x = MARGIN_LEFT + index * 150
        parts.append(f'<rect x="{x}" y="{legend_y}" width="14" height="14" '
                     f'fill="{COLOURS[name]}"/>')
        parts.append(f'<text x="{x + 20}" y="{legend_y + 12}" {FONT} font-size="13">'
                     f'{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _bar_panel(title: str, top: int, groups: list[str], series: list[str], value) -> list[str]:
    parts = [f'<text x="{MARGIN_LEFT}" y="{top - 12}" {FONT} font-size="15" '
             f'font-weight="bold">{escape(title)}</text>']
    values = [value(group, name) for group in groups for name in series]
    highest = max([v for v in values if v] or [1.0])
    scale_top = _nice_ceiling(highest)
    plot_width = WIDTH - MARGIN_LEFT - 20
    bottom = top + PANEL_HEIGHT - 30

    for step in range(5):
        level = scale_top * step / 4
        y = bottom - (bottom - top) * step / 4
        parts.append(f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{WIDTH - 20}" y2="{y:.1f}" '
                     f'stroke="#dddddd"/>')
        parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" {FONT} font-size="11" '
                     f'text-anchor="end">{_format(level)}</text>')

    if not groups:
        return parts
    group_width = plot_width / len(groups)
    bar_width = group_width * 0.8 / max(1, len(series))
    for group_index, group in enumerate(groups):
        left = MARGIN_LEFT + group_index * group_width + group_width * 0.1
        for series_index, name in enumerate(series):
            figure = value(group, name)
            if not figure:
                continue
            height = (bottom - top) * figure / scale_top
            x = left + series_index * bar_width
            parts.append(f'<rect x="{x:.1f}" y="{bottom - height:.1f}" width="{bar_width - 2:.1f}" '
                         f'height="{height:.1f}" fill="{COLOURS[name]}">'
                         f'<title>{escape(name)} {escape(group)}: {_format(figure)}</title></rect>')
        parts.append(f'<text x="{left + group_width * 0.4:.1f}" y="{bottom + 16}" {FONT} '
                     f'font-size="12" text-anchor="middle">{escape(group)}</text>')
    return parts


def _nice_ceiling(value: float) -> float:
    """Round ``value`` up to 1, 2 or 5 times a power of ten, for readable axis labels."""
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    for multiple in (1, 2, 5, 10):
        if value <= multiple * magnitude:
            return multiple * magnitude
    return 10 * magnitude


def _format(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10 and value == int(value):
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"
