"""The Markdown subset of the runbooks, converted to HTML; anything else is refused.

Why a converter of our own rather than the ``markdown`` package: docs/decisions.md
("Runbook pages: a small Markdown converter").
"""

from __future__ import annotations

import html
import re

__all__ = ["markdown_to_html"]

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)\s*$")
_HEADING = re.compile(r"^(#{1,6}) +(\S.*?)\s*$")
_BULLET = re.compile(r"^- +(\S.*)$")
_NUMBERED = re.compile(r"^\d+\. +(\S.*)$")
# Quotes, tables, raw HTML, other bullets, nested lists, rules, setext underlines, tabs.
_UNSUPPORTED = re.compile(r"^(>|\||<|\s*[*+] |\s+- |\s+\d+\. |={3,}|-{3,}|\*{3,}|\t)")
_BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_SAFE_URL = re.compile(r"^(https?://|/|#|\./|\.\./|[A-Za-z0-9_.-]+(?:[/#?]|$))")


def markdown_to_html(text: str) -> str:
    """HTML for the Markdown subset the runbooks use; anything else raises ValueError.

    The subset: ATX headings, paragraphs, flat ``-`` and ``1.`` lists (continuation
    lines indented), fenced code blocks, and inline code, ``**bold**`` and
    ``[links](url)``. Raw HTML is escaped, never passed through.
    """
    converter = _Converter()
    for number, line in enumerate(text.splitlines(), start=1):
        converter.feed(number, line)
    return converter.close()


class _Converter:
    """Line by line: the open paragraph, list or code block, and the HTML so far."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.paragraph: list[str] = []
        self.items: list[list[str]] = []  # each item's lines
        self.list_tag = ""
        self.fence: list[str] | None = None  # the lines of an open code block
        self.fence_lang = ""

    def feed(self, number: int, line: str) -> None:
        """Take one line (``number`` counts from 1, for error messages)."""
        if self.fence is not None:
            self._code_line(self.fence, line)
        elif not line.strip():
            self._flush_paragraph()  # a list survives blank lines between its items
        elif match := _FENCE.match(line):
            self._flush()
            self.fence, self.fence_lang = [], match.group(1)
        elif match := _HEADING.match(line):
            self._flush()
            self._heading(len(match.group(1)), match.group(2))
        elif match := (_BULLET.match(line) or _NUMBERED.match(line)):
            self._item("ul" if line.startswith("-") else "ol", match.group(1))
        elif self._continues_item(line):
            self.items[-1].append(line.strip())
        elif _UNSUPPORTED.match(line) or line.startswith(" "):
            raise ValueError(f"line {number}: Markdown outside the supported subset: {line!r}")
        else:
            self._flush_list()
            self.paragraph.append(line.strip())

    def close(self) -> str:
        """The HTML of everything fed; raises ValueError when a code block is left open."""
        if self.fence is not None:
            raise ValueError("a fenced code block is not closed")
        self._flush()
        return "".join(self.out)

    def _code_line(self, fence: list[str], line: str) -> None:
        if line.strip() != "```":
            fence.append(line)
            return
        cls = f' class="language-{self.fence_lang}"' if self.fence_lang else ""
        code = html.escape("\n".join(fence) + "\n")
        self.out.append(f"<pre><code{cls}>{code}</code></pre>\n")
        self.fence = None

    def _heading(self, level: int, title: str) -> None:
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        self.out.append(f'<h{level} id="{slug}">{_inline(title)}</h{level}>\n')

    def _item(self, tag: str, first_line: str) -> None:
        self._flush_paragraph()
        if self.items and self.list_tag != tag:
            self._flush_list()  # "- a" then "1. b": two lists
        self.list_tag = tag
        self.items.append([first_line])

    def _continues_item(self, line: str) -> bool:
        """True for an indented line that continues the open list item."""
        return (
            bool(self.items)
            and not self.paragraph
            and line.startswith("  ")
            and not (_starts_block(line))
        )

    def _flush(self) -> None:
        self._flush_paragraph()
        self._flush_list()

    def _flush_paragraph(self) -> None:
        if self.paragraph:
            self.out.append(f"<p>{_inline(' '.join(self.paragraph))}</p>\n")
            self.paragraph.clear()

    def _flush_list(self) -> None:
        if self.items:
            lis = "".join(f"<li>{_inline(' '.join(item))}</li>\n" for item in self.items)
            self.out.append(f"<{self.list_tag}>\n{lis}</{self.list_tag}>\n")
            self.items.clear()


def _starts_block(line: str) -> bool:
    """True when an indented line would open a nested block (unsupported in list items)."""
    text = line.lstrip()
    return any(p.match(text) for p in (_FENCE, _HEADING, _BULLET, _NUMBERED, _UNSUPPORTED))


def _inline(text: str) -> str:
    """Escape ``text`` and turn its code spans, bold and links into HTML."""
    parts = text.split("`")
    if len(parts) % 2 == 0:
        raise ValueError(f"unbalanced backtick in {text!r}")
    out = []
    for index, part in enumerate(parts):
        if index % 2:  # between backticks: code, taken literally
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            out.append(_links(_BOLD.sub(r"<strong>\1</strong>", html.escape(part))))
    return "".join(out)


def _links(escaped: str) -> str:
    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if not _SAFE_URL.match(html.unescape(url)):
            return label  # javascript: and friends lose the link, keep the text
        return f'<a href="{url}">{label}</a>'

    return _LINK.sub(link, escaped)
