"""CSV export of a dashboard table, safe to open in a spreadsheet.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets (CSV injection, OWASP); such text is written with
a leading apostrophe so it stays text. Numbers are written as they are."""

from __future__ import annotations

import csv
import io

from monitoring.reports.figures import Table

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def table_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_safe(header) for header in table.headers])
    for row in table.rows:
        writer.writerow([csv_safe(cell.value) for cell in row])
    return out.getvalue()
