"""README rendering: Markdown, then sanitized (package content is untrusted)."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given
from hypothesis import strategies as st

from package_storage.web.readme import readme_html


def test_markdown_is_rendered_with_headings_shifted() -> None:
    html = readme_html("# Title\n\nSome **bold** and `code`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<h4>Title</h4>" in html and "<strong>bold</strong>" in html
    assert "<code>code</code>" in html and "<table>" in html


def test_raw_html_and_unsafe_links_are_text() -> None:
    html = readme_html(
        "<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n[x](javascript:alert(3))\n"
        '\n[ok](https://example.com "t")\n\n![i](data:image/svg+xml,<svg onload=alert(4)>)\n'
    )
    assert "<script" not in html and "onerror" not in html.replace("onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;" in html and 'href="javascript' not in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert 'src="data:' not in html


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name in ("href", "src"):
                self.urls.append(value or "")


@given(st.text(alphabet=st.sampled_from("<>\"'&=/ ascriptonerlgjv()[]:!#*`\n"), max_size=200))
def test_no_markup_of_the_text_survives(text: str) -> None:
    found = _Markup()
    found.feed(readme_html(text))
    assert "script" not in found.tags
    assert not any(a.startswith("on") for a in found.attributes)
    assert not any(
        u.strip().lower().startswith(("javascript", "data", "vbscript")) for u in found.urls
    )
