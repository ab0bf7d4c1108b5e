"""``{% cell_html cell link_url download_url %}`` and ``{% rows_html rows can_delete offset_paging %}``.

A table page shows thousands of cells. Rendering them with template tags, or
with one format_html call each, costs more than everything else on the page, so
``rows_html`` builds the whole table body with ONE format_html call: the HTML
fragments below are constants of this module (never data), and every value
goes in as an argument, which format_html escapes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.safestring import SafeString

from bastion.explorer.values import Cell

register = template.Library()


def _cell_parts(cell: Cell, link_url: str | None, download_url: str | None) -> tuple[str, tuple[Any, ...]]:
    """An HTML fragment with ``{}`` placeholders, and the values that fill them."""
    if cell.null:
        return '<span class="null" title="NULL: no value">{}</span>', ("NULL",)
    if cell.masked:
        return '<span class="masked" title="Masked for your role">{}</span>', (cell.text,)
    if cell.binary_size is not None:
        size = filesizeformat(cell.binary_size)
        if download_url:
            return '<a class="blob" href="{}" download>binary · {}</a>', (download_url, size)
        return '<span class="blob">binary · {}</span>', (size,)
    if link_url:
        return '<a href="{}" title="Open the referenced row">{}</a>', (link_url, cell.text)
    if cell.text == "":
        return '<span class="empty" title="Empty text (not NULL)">{}</span>', ("empty",)
    if cell.truncated:
        return '{}<span class="more" title="{} characters: open the row to see all">…</span>', (cell.text,
                                                                                                cell.length)
    return "{}", (cell.text,)


@register.simple_tag
def cell_html(cell: Cell, link_url: str | None = None, download_url: str | None = None) -> SafeString:
    """One value as HTML: NULL, empty, masked, binary and linked values each look different."""
    fragment, args = _cell_parts(cell, link_url, download_url)
    return format_html(fragment, *args)


@register.simple_tag
def rows_html(rows: Iterable[Any], can_delete: bool, offset_paging: bool) -> SafeString:
    """The ``<tr>`` of every row of a table page (rows: views.DisplayRow)."""
    pieces: list[str] = []
    args: list[Any] = []
    for index, row in enumerate(rows, start=1):
        pieces.append("<tr>")
        if can_delete:
            pieces.append('<td class="pick"><label class="visually-hidden" for="pick{}">Select row {}</label>'
                          '<input type="checkbox" id="pick{}" name="k" value="{}"></td>')
            args += [index, index, index, row.token]
        if row.url:
            pieces.append('<td class="pick"><a href="{}" title="Open this row" aria-label="Open row {}">↗</a></td>')
            args += [row.url, index]
        elif not offset_paging:
            pieces.append("<td></td>")
        for item in row.items:
            fragment, values = _cell_parts(item.cell, item.link_url, item.download_url)
            pieces.append(f'<td class="numeric">{fragment}</td>' if item.numeric else f"<td>{fragment}</td>")
            args += values
        pieces.append("</tr>")
    if not args:
        return format_html("{}", "")
    return format_html("".join(pieces), *args)
