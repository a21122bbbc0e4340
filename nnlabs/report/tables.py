"""Markdown tables for the labs' report.md files."""

from __future__ import annotations


def cell(value) -> str:
    """A table cell: strings as they are (pipes escaped), ints with thousands separators, floats to 3 places."""
    if isinstance(value, str):
        return value.replace("|", "\\|")
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.3f}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]) + "\n"
