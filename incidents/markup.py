"""Markdown of incident descriptions and comments, rendered to HTML that is safe to insert.

Analysts write Markdown (lists, code, links, emphasis); a single newline is a line break,
as people type in a text box. The HTML comes from `markdown` and is then cleaned by `nh3`
with an allow-list: whatever the text holds (raw HTML, `javascript:` links, event
attributes), only the tags and attributes below reach a browser, and links get
`rel="noopener noreferrer nofollow"`.
"""

import markdown
import nh3

ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "strong",
        "em",
        "code",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "li",
        "a",
        "h1",
        "h2",
        "h3",
        "h4",
        "hr",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
EXTENSIONS = ["nl2br", "sane_lists", "fenced_code", "tables"]


def render_markdown(text):
    """Safe HTML for `text` (Markdown); "" for empty text."""
    if not text:
        return ""
    html = markdown.markdown(text, extensions=EXTENSIONS, output_format="html")
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
    )
