"""Text that people or the file system supply, shown as itself: never read as Markdown, LaTeX or a directive.

Streamlit reads GitHub-flavoured Markdown, and more, in ``st.markdown``, ``st.caption``, ``st.info``/``warning``/
``error``/``success``, ``st.toast``, and in every label, button, expander, metric, progress text and tooltip
(``help=``): ``# heading``, ``![image](url)`` (which the browser fetches), links, ``$LaTeX$``, colour and badge
directives (``:green-badge[...]``, ``:red[...]``), icon and emoji shortcodes (``:material_check:``,
``:streamlit:``, ``:smile:``), typographic arrows (`` -> `` becomes an arrow) and links made of bare web and
e-mail addresses.  A note, an annotator or user name, an anomaly type, a file, folder or machine name, a
threshold reason, an export path, a job message or an error detail that quotes any of them goes through
:func:`md_literal` before it is put in such a string; suggested commands go in ``st.code``, which reads nothing.
Plotly text (axis and hover labels) reads a few HTML tags and entities instead: :func:`plot_literal`.
Selectbox options and dataframe cells are shown as they are and need neither.
"""

from __future__ import annotations

import html
import re
import string

WORD_JOINER = "\u2060"  # invisible and zero-width: breaks a pattern without showing anything
_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")  # CommonMark escapes every one of them
# Streamlit rewrites the text left after parsing (escapes included): ``:name:`` shortcodes (icons, the logo,
# emoji), these arrows between spaces, and bare addresses (http://, www., name@host) into links.  A word joiner
# after the opening colon, the arrow's first character, ``http:``, ``www`` or ``@`` keeps them as typed.
_SHORTCODE = re.compile(r":(?=[\w+-]+:)")
_ARROW = re.compile(r"(?:(?<=\s)|^)(<->|->|<-|--|>=|<=|~=)(?=\s|$)")
_AUTOLINK = re.compile(r"(?:(?<=https:)|(?<=http:))(?=//)|(?<=www)(?=\.)|(?<=@)(?=[-\w])", re.IGNORECASE)
_LINE_END = re.compile(r"\r\n|[\r\n\v\f\x85\u2028\u2029]")
_TRAILING_LINE_ENDS = re.compile(r"[\r\n\v\f\x85\u2028\u2029]+$")
_LEADING_BLANKS = re.compile(r"^[ \t]+")  # four of them would start a code block, which shows escapes as typed


def md_literal(value: object, *, multiline: bool = False) -> str:
    """``value`` (made a string) as Markdown that Streamlit shows exactly as typed.

    Every ASCII punctuation character is backslash-escaped (so no heading, list, emphasis, link, image,
    table, HTML, entity, LaTeX or directive can start), shortcodes, arrows and bare web or e-mail addresses
    are broken by an invisible word joiner, and leading blanks become character references.  Line breaks
    become spaces, or with ``multiline`` Markdown hard line breaks (``value`` keeps its lines in one paragraph)."""
    text = str(value)
    if multiline:  # a break after the last line would show as a backslash
        text = _TRAILING_LINE_ENDS.sub("", text)
    text = _SHORTCODE.sub(":" + WORD_JOINER, text)
    text = _ARROW.sub(lambda m: m[1][0] + WORD_JOINER + m[1][1:], text)
    text = _AUTOLINK.sub(WORD_JOINER, text)
    text = _PUNCTUATION.sub(r"\\\1", text)
    text = _LEADING_BLANKS.sub(lambda m: "".join(f"&#{ord(c)};" for c in m[0]), text)
    return _LINE_END.sub("\\\\\n" if multiline else " ", text)


def plot_literal(value: object) -> str:
    """``value`` as Plotly text (titles, axis, legend and hover labels) shown as typed: Plotly reads tags such
    as ``<a href>`` and ``<br>`` and decodes entities there, so ``&``, ``<`` and ``>`` are written as entities."""
    return html.escape(str(value), quote=False)
