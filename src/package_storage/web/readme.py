"""A package README as safe HTML: Markdown (markdown-it-py, CommonMark + tables) with raw HTML
off, then sanitized by nh3 (an allow-list of tags and attributes; ``javascript:`` and other
unsafe URLs dropped; links get ``rel="noopener noreferrer nofollow"``). Package content is
untrusted: a ``<script>`` in a README shows as text."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    "table"
)

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre",
    "s", "span", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"align"},
    "td": {"align"},
    "code": {"class"},
}


HEADING_SHIFT = 3
"""README headings move down three levels (``#`` -> ``<h4>``): they sit under the page's
``README`` heading (``<h3>``), and the page keeps its one ``<h1>``."""


def readme_html(text: str) -> str:
    """The README's HTML, safe to put into a page as it is."""
    tokens = _md.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            level = int(token.tag[1:]) + HEADING_SHIFT
            token.tag = f"h{min(level, 6)}"
    rendered = _md.renderer.render(tokens, _md.options, {})
    return nh3.clean(
        rendered,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


__all__ = ["readme_html"]
