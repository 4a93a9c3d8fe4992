"""Server-rendered SVG charts for the dashboard tables: plain shapes with classes (the colours
are in ``static/css/app.css``), no inline style or script, so the strict CSP holds. Each chart
goes with its table, which stays the accessible source of the numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitoring.reports.figures import Table

WIDTH = 600
BAR_HEIGHT = 22
LABEL_WIDTH = 150


@dataclass(frozen=True)
class Shape:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str
    href: str = ""


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass
class Chart:
    kind: str
    width: int
    height: int
    title: str
    shapes: list[Shape] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def horizontal_bars(table: Table, column: int, *, maximum: float | None = None) -> Chart:
    """One bar per row: the row's first cell is its label, ``column`` its length."""
    values = [_number(row[column].value) for row in table.rows]
    top = maximum or max(values, default=0) or 1
    chart = Chart("bars", WIDTH, max(len(values), 1) * BAR_HEIGHT + 8, table.definition.title)
    room = WIDTH - LABEL_WIDTH - 60
    for n, (row, value) in enumerate(zip(table.rows, values, strict=True)):
        y = 4 + n * BAR_HEIGHT
        chart.labels.append(Label(LABEL_WIDTH - 6, y + 15, str(row[0])[:24], "end"))
        chart.shapes.append(
            Shape(
                LABEL_WIDTH,
                y + 3,
                max(room * value / top, 1 if value else 0),
                BAR_HEIGHT - 6,
                "chart-bar",
                f"{row[0]}: {row[column]}",
                row[column].href,
            )
        )
        chart.labels.append(Label(LABEL_WIDTH + room * value / top + 6, y + 15, str(row[column])))
    return chart


def columns(table: Table, column: int, *, maximum: float | None = None) -> Chart:
    """One column per row (days, left to right), ``column`` its height."""
    values = [_number(row[column].value) for row in table.rows]
    top = maximum or max(values, default=0) or 1
    height, base = 160, 140
    step = (WIDTH - 40) / max(len(values), 1)
    chart = Chart("columns", WIDTH, height, table.definition.title)
    for n, (row, value) in enumerate(zip(table.rows, values, strict=True)):
        x = 30 + n * step
        tall = (base - 10) * value / top
        chart.shapes.append(
            Shape(
                x + step * 0.15,
                base - tall,
                step * 0.7,
                tall,
                "chart-bar",
                f"{row[0]}: {row[column]}",
                row[column].href,
            )
        )
        if len(values) <= 10 or n % max(len(values) // 7, 1) == 0:
            chart.labels.append(Label(x + step / 2, base + 14, str(row[0])[:10], "middle"))
    chart.labels.append(Label(2, 14, f"{top:g}"))
    return chart


def stacked_columns(table: Table, first: int, classes: list[str]) -> Chart:
    """Columns of several parts (``classes`` from column ``first`` on), e.g. sentiment."""
    totals = [sum(_number(row[first + k].value) for k in range(len(classes))) for row in table.rows]
    top = max(totals, default=0) or 1
    height, base = 160, 140
    step = (WIDTH - 40) / max(len(table.rows), 1)
    chart = Chart("columns", WIDTH, height, table.definition.title)
    for n, row in enumerate(table.rows):
        x, y = 30 + n * step, float(base)
        for k, css in enumerate(classes):
            cell = row[first + k]
            tall = (base - 10) * _number(cell.value) / top
            if tall:
                y -= tall
                chart.shapes.append(
                    Shape(
                        x + step * 0.15,
                        y,
                        step * 0.7,
                        tall,
                        css,
                        f"{row[0]}, {table.headers[first + k]}: {cell}",
                        cell.href,
                    )
                )
        if len(table.rows) <= 10 or n % max(len(table.rows) // 7, 1) == 0:
            chart.labels.append(Label(x + step / 2, base + 14, str(row[0])[:10], "middle"))
    chart.labels.append(Label(2, 14, f"{top:g}"))
    return chart


def heatmap(table: Table) -> Chart:
    """Weekday rows by hour columns; the shade (``heat-0`` .. ``heat-5``) is the count's share
    of the busiest hour."""
    values = [[_number(cell.value) for cell in row[1:]] for row in table.rows]
    top = max((v for row in values for v in row), default=0) or 1
    cell_w, cell_h, left = 22, 20, 40
    chart = Chart("heatmap", left + 24 * cell_w + 4, 7 * cell_h + 24, table.definition.title)
    for r, row in enumerate(table.rows):
        chart.labels.append(Label(left - 6, 20 + r * cell_h + 14, str(row[0]), "end"))
        for h, cell in enumerate(row[1:]):
            value = values[r][h]
            shade = 0 if not value else min(5, 1 + int(4 * value / top))
            chart.shapes.append(
                Shape(
                    left + h * cell_w,
                    20 + r * cell_h,
                    cell_w - 2,
                    cell_h - 2,
                    f"heat-{shade}",
                    f"{row[0]} {table.headers[h + 1]}:00: {cell}",
                    cell.href,
                )
            )
    for h in range(0, 24, 3):
        chart.labels.append(Label(left + h * cell_w + cell_w / 2, 14, f"{h:02d}", "middle"))
    return chart


def chart_for(table: Table) -> Chart | None:
    if table.key == "sla_by_target":
        return horizontal_bars(table, 1, maximum=100)
    if table.key == "sla_over_time":
        return columns(table, 1, maximum=100)
    if table.key in ("volume_channel", "volume_brand", "backlog"):
        return horizontal_bars(table, 1)
    if table.key == "heatmap":
        return heatmap(table)
    if table.key == "sentiment":
        return stacked_columns(table, 1, ["mood-negative", "mood-neutral", "mood-positive"])
    return None
