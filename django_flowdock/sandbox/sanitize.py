"""A small allow-list HTML sanitizer for what integrations post.

Flowdock renders the HTML of bodies and the links of titles and field values; the
sandbox does the same but never lets a posted script run in the inbox page.
"""

from html import escape
from html.parser import HTMLParser
from urllib.parse import urlsplit

BODY_TAGS = frozenset(
    {
        *("a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "hr", "i", "img"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "li", "ol", "p", "pre", "s", "span", "strong"),
        *("sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "u", "ul"),
    }
)
LINK_TAGS = frozenset({"a"})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}}
URL_ATTRIBUTES = {"href", "src"}
SAFE_SCHEMES = {"", "http", "https", "mailto"}
VOID_TAGS = frozenset({"br", "hr", "img"})
# Their content is code or styling, never text to show.
DROPPED_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "template"})


class _Sanitizer(HTMLParser):
    def __init__(self, allowed_tags: frozenset[str], cids: dict[str, str]) -> None:
        super().__init__(convert_charrefs=True)
        self.allowed_tags = allowed_tags
        self.cids = cids
        self.out: list[str] = []
        self.open_tags: list[str] = []
        self.skipping: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skipping:
            return
        if tag in DROPPED_WITH_CONTENT:
            self.skipping = tag
            return
        if tag not in self.allowed_tags:
            return
        kept = []
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES.get(tag, ()) or value is None:
                continue
            if name in URL_ATTRIBUTES and value.strip().lower().startswith("cid:"):
                # An attachment the message carries, referenced by its content id.
                value = self.cids.get(value.strip()[4:], "")
                if not value:
                    continue
            if (
                name in URL_ATTRIBUTES
                and urlsplit(value.strip()).scheme.lower() not in SAFE_SCHEMES
            ):
                continue
            kept.append(f' {name}="{escape(value)}"')
        if tag == "a":
            kept.append(' rel="nofollow noopener" target="_blank"')
        self.out.append(f"<{tag}{''.join(kept)}>")
        if tag not in VOID_TAGS:
            self.open_tags.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS and self.open_tags and self.open_tags[-1] == tag:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag == self.skipping:
                self.skipping = None
            return
        if tag not in self.open_tags:
            return
        # Close whatever the author left open inside this element.
        while self.open_tags:
            inner = self.open_tags.pop()
            self.out.append(f"</{inner}>")
            if inner == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(escape(data, quote=False))

    def result(self) -> str:
        self.close()
        return "".join(self.out) + "".join(f"</{tag}>" for tag in reversed(self.open_tags))


def sanitize_html(
    html: str, allowed_tags: frozenset[str] = BODY_TAGS, cids: dict[str, str] | None = None
) -> str:
    """Return ``html`` with only allowed tags, attributes and URL schemes left; ``cid:``
    URLs point to the attachment of that content id in ``cids``, or are dropped."""
    sanitizer = _Sanitizer(allowed_tags, cids or {})
    sanitizer.feed(html or "")
    return sanitizer.result()
