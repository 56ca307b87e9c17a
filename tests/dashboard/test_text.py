"""dashboard/components/text.py: supplied text, put through ``md_literal``, reads back as itself.

A real CommonMark parser (markdown-it-py, with GitHub's tables and strikethrough) renders the escaped
text; what it shows must be the text as typed, character for character: no heading, list, emphasis, link, image,
table, HTML, entity or code.  Streamlit adds LaTeX (``$``), directives (``:green-badge[...]``) and rewrites of
the parsed text (shortcodes such as ``:material_check:`` and ``:streamlit:``, typographic arrows, links from bare
web and e-mail addresses): the escaped
text must leave none of them a way in.  ``tests/dashboard/test_browser_text.py`` shows it in a real Streamlit.
"""

from __future__ import annotations

import html
import re
import string

import pytest
from markdown_it import MarkdownIt

from dashboard.components.text import WORD_JOINER, md_literal, plot_literal

PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])

HOSTILE = [
    "# APPROVED\n![x](http://127.0.0.1:8000/pixel.png) :green-badge[APPROVED] $\\frac{a}{b}$",
    "$\\frac{a}{b}$",
    "$$x^2$$",
    "**bold** __bold__ *it* _it_ ~~gone~~",
    "[click](javascript:alert(1)) <http://evil.example> http://evil.example www.evil.example a@evil.example",
    "<img src=x onerror=alert(1)> <script>alert(1)</script> <!-- hidden -->",
    "&lt;b&gt; &amp; &#35; &copy;",
    ":red[red] :green-badge[APPROVED] :small[x] :help[tip] :material/check: :material_check: :streamlit: :smile: :+1:",
    "a -> b <- c <-> d -- e >= f <= g ~= h",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "- item\n* item\n+ item\n1. item\n2) item\n> quote\n---\n***\n===",
    "```\ncode\n```\n~~~\ncode\n~~~",
    "`code` ``co`de``",
    "    indented code",
    "\tindented with a tab",
    "trailing backslash \\",
    "line\\\nbreak  \nand two spaces",
    "fan/id_00 $(touch PWNED) `touch PWNED` ; | & ' \"",
    "clip_01.wav 12:30:45 50% {braces} [brackets] (parens) ^caret ?question =equals @at ,comma",
]


def _shown(markdown: str) -> str:
    """The HTML of ``markdown`` (one paragraph), tags and all."""
    rendered = PARSER.render(markdown)
    assert rendered.startswith("<p>") and rendered.endswith("</p>\n"), rendered
    return rendered.removeprefix("<p>").removesuffix("</p>\n")


@pytest.mark.parametrize("char", list(string.punctuation))
def test_every_punctuation_character_reads_back_as_itself(char):
    for text in (char, char * 3, f"x{char}y", f"{char} x {char}"):
        escaped = md_literal(text)
        assert _shown(escaped).replace(WORD_JOINER, "") == html.escape(text, quote=False).replace('"', "&quot;")


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_reads_back_as_itself_on_one_line(text):
    shown = _shown(md_literal(text))
    one_line = re.sub(r"\r\n|[\r\n]", " ", text)
    assert shown.replace(WORD_JOINER, "") == html.escape(one_line, quote=False).replace('"', "&quot;")
    assert "<" not in shown.replace("&lt;", "")  # not one tag: no img, a, h1, code, em, table, ...


@pytest.mark.parametrize("text", HOSTILE)
def test_multiline_text_keeps_its_lines_in_one_paragraph(text):
    shown = _shown(md_literal(text, multiline=True))
    lines = re.split(r"\r\n|[\r\n]", text)
    assert shown.replace(WORD_JOINER, "") == "<br />\n".join(html.escape(x, quote=False) for x in lines).replace(
        '"', "&quot;"
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_nothing_is_left_for_streamlits_own_markdown_extensions(text):
    escaped = md_literal(text)
    unescaped = re.sub(r"\\(.)", r"\1", escaped)  # the text Streamlit's rewrites see, after parsing
    # LaTeX and directives start at an unescaped $ or : in the source, and any punctuation is escaped
    assert re.fullmatch(r"(?:\\[!-/:-@\[-`{-~]|&#(?:9|32);|[^!-/:-@\[-`{-~\\])*", escaped.replace("\\\n", "")), escaped
    # Streamlit turns ":material/" into ":material_" in the source, then rewrites shortcodes and arrows in the text
    assert ":material/" not in escaped
    assert not re.search(r":[\w+-]+:", unescaped), unescaped
    assert not re.search(r"(^|\s)(<->|->|<-|--|>=|<=|~=)(\s|$)", unescaped), unescaped
    # and links bare addresses in it (mdast-util-gfm-autolink-literal's patterns)
    assert not re.search(r"(?i)https?://|www(?=\.)|@[-\w]", unescaped), unescaped


def test_line_breaks_are_spaces_on_one_line_and_hard_breaks_on_many():
    assert md_literal("a\nb\r\nc\rd") == "a b c d"
    assert md_literal("a\nb\r\nc", multiline=True) == "a\\\nb\\\nc"
    assert md_literal("a\n\n", multiline=True) == "a"  # no stray backslash after the last line
    assert "\n" not in md_literal("x\u2028y\x85z\x0bw\x0cv")


def test_plain_words_are_left_alone():
    assert md_literal("Ada Annotator") == "Ada Annotator"
    assert md_literal("fan/id_00") == "fan\\/id\\_00"
    assert md_literal(42) == "42"


def test_plotly_text_shows_tags_and_entities_as_typed():
    assert (
        plot_literal('<a href="http://evil">x</a><br>&amp;')
        == '&lt;a href="http://evil"&gt;x&lt;/a&gt;&lt;br&gt;&amp;amp;'
    )
    assert plot_literal("fan/id_00") == "fan/id_00"
