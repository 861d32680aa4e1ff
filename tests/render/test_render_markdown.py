"""The Markdown subset of the runbooks as HTML: worked examples, escaping, refusals."""

from __future__ import annotations

import pytest

from monitor.render import markdown_to_html


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        ("# Title\n", '<h1 id="title">Title</h1>\n'),
        ("### 2. Check it\n", '<h3 id="2-check-it">2. Check it</h3>\n'),
        ("one\ntwo\n\nthree\n", "<p>one two</p>\n<p>three</p>\n"),
        (
            "a `<b> & c` and **bold** x\n",
            "<p>a <code>&lt;b&gt; &amp; c</code> and <strong>bold</strong> x</p>\n",
        ),
        ("- a\n  more\n- b\n", "<ul>\n<li>a more</li>\n<li>b</li>\n</ul>\n"),
        ("- a\n\n- b\n", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n"),
        ("1. a\n2. b\n", "<ol>\n<li>a</li>\n<li>b</li>\n</ol>\n"),
        ("- a\n1. b\n", "<ul>\n<li>a</li>\n</ul>\n<ol>\n<li>b</li>\n</ol>\n"),
        (
            "```sh\necho '<x>' && **y**\n```\n",
            '<pre><code class="language-sh">echo &#x27;&lt;x&gt;&#x27; &amp;&amp; **y**\n'
            "</code></pre>\n",
        ),
        (
            'see [docs](https://e.x/a?b=1&c="2")\n',
            '<p>see <a href="https://e.x/a?b=1&amp;c=&quot;2&quot;">docs</a></p>\n',
        ),
        ("see [it](javascript:alert(1))\n", "<p>see it)</p>\n"),
        ("x <script>alert(1)</script>\n", "<p>x &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"),
        ("text\n- item\n", "<p>text</p>\n<ul>\n<li>item</li>\n</ul>\n"),
    ],
)
def test_markdown_to_html_worked_examples(markdown: str, html: str) -> None:
    assert markdown_to_html(markdown) == html


@pytest.mark.parametrize(
    "markdown",
    [
        "> a quote\n",
        "| a | table |\n",
        "<div>raw html</div>\n",
        "- item\n  - nested\n",
        "- item\n  ```sh\n",
        "---\n",
        "    indented code\n",
        "```sh\nnever closed\n",
        "a `dangling backtick\n",
        "* star bullet\n",
    ],
)
def test_markdown_outside_the_subset_is_refused(markdown: str) -> None:
    with pytest.raises(ValueError, match=r"supported subset|not closed|backtick"):
        markdown_to_html(markdown)


@pytest.mark.parametrize(
    ("markdown", "html"),
    [
        # A blank line ends a paragraph but not a list; an indented line continues an item.
        ("- a\n\n  more\n- b\n", "<ul>\n<li>a more</li>\n<li>b</li>\n</ul>\n"),
        # A heading, a fence or a paragraph line closes the open list.
        ("- a\n## B\n", '<ul>\n<li>a</li>\n</ul>\n<h2 id="b">B</h2>\n'),
        ("- a\nafter\n", "<ul>\n<li>a</li>\n</ul>\n<p>after</p>\n"),
        ("- a\n```\nx\n```\n", "<ul>\n<li>a</li>\n</ul>\n<pre><code>x\n</code></pre>\n"),
        # Inside a fence nothing is Markdown and blank lines are kept.
        (
            "```\n# not a heading\n\n- nor a list\n```\n",
            "<pre><code># not a heading\n\n- nor a list\n</code></pre>\n",
        ),
        # Bold inside a link label, a relative link, a link inside code stays text.
        (
            "[**x**](../a.md) `[y](z)`\n",
            '<p><a href="../a.md"><strong>x</strong></a> <code>[y](z)</code></p>\n',
        ),
        ("## Is it real?\n", '<h2 id="is-it-real">Is it real?</h2>\n'),
    ],
)
def test_markdown_blocks_open_and_close_as_worked_out(markdown: str, html: str) -> None:
    assert markdown_to_html(markdown) == html


@pytest.mark.parametrize(
    ("markdown", "message"),
    [
        (
            "ok\n  indented after a paragraph\n",
            "line 2: Markdown outside the supported subset: '  indented after a paragraph'",
        ),
        ("# T\n\n> quote\n", "line 3: Markdown outside the supported subset: '> quote'"),
        ("```sh\nx\n", "a fenced code block is not closed"),
        ("a `b` `c\n", "unbalanced backtick in 'a `b` `c'"),
    ],
)
def test_refusals_say_where(markdown: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        markdown_to_html(markdown)
    assert str(info.value) == message


def test_empty_text_is_an_empty_page() -> None:
    assert markdown_to_html("") == markdown_to_html("\n\n") == ""
