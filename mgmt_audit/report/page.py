"""The report page: sections made of figure, table and text blocks, rendered by jinja2 (autoescape
on, so every string from a spec, a trial or a manifest is shown as text, never as markup)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mgmt_audit.report.figures import to_data_uri


@dataclass
class Cell:
    """One table cell; ``css`` is a class name from the template's stylesheet (e.g. ``num``)."""

    text: str
    css: str = ""


@dataclass
class Block:
    """A figure (``uri`` a PNG data URI), a table (``columns``, ``rows``), a paragraph (``text``) or
    folded blocks (``children`` under the summary ``title``, closed until opened)."""

    kind: str  # "figure" | "table" | "text" | "details"
    title: str = ""
    uri: str = ""
    alt: str = ""
    caption: str = ""
    columns: Sequence[str] = ()
    rows: Sequence[Sequence[Cell]] = ()
    note: str = ""
    text: str = ""
    children: Sequence[Block] = ()


@dataclass
class Section:
    """One numbered section; ``empty`` says why there is nothing to show when that is so."""

    anchor: str
    heading: str
    intro: str = ""
    blocks: list[Block] = field(default_factory=list)
    empty: str = ""


def figure_block(figure: Any, alt: str, caption: str) -> Block:
    """A matplotlib figure embedded as a PNG data URI."""
    return Block(kind="figure", uri=to_data_uri(figure), alt=alt, caption=caption)


def table_block(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "", note: str = ""
) -> Block:
    """A table; numbers are formatted (3 decimals for floats) and right-aligned."""
    return Block(kind="table", title=title, columns=list(columns),
                 rows=[[cell_of(value) for value in row] for row in rows], note=note)


def text_block(text: str, title: str = "") -> Block:
    return Block(kind="text", title=title, text=text)


def details_block(summary: str, children: Sequence[Block]) -> Block:
    """``children`` folded under ``summary`` (an HTML ``<details>``: closed on screen and in print)."""
    return Block(kind="details", title=summary, children=list(children))


def cell_of(value: Any) -> Cell:
    """A table cell for a value: Cells pass through, numbers right-aligned, None as an en dash."""
    if isinstance(value, Cell):
        return value
    if value is None:
        return Cell("–")
    if isinstance(value, bool):
        return Cell("yes" if value else "no")
    if isinstance(value, float):
        return Cell(f"{value:.3f}", "num")
    if isinstance(value, int):
        return Cell(str(value), "num")
    return Cell(str(value))


def render(title: str, description: str, sections: Sequence[Section], generated: str,
           version: str, lede: str = "", runs: Sequence[str] = ()) -> str:
    """The whole HTML page as a string: ``lede`` (the answer) first, the ``description`` and the
    ``runs`` (what was run, one line each) below it."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("mgmt_audit.report", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html").render(
        title=title, description=description, sections=sections, generated=generated,
        version=version, lede=lede, runs=runs,
    )
