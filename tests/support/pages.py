"""Hostile HTML pages for scrape tests."""

from __future__ import annotations


def nested_divs(depth: int = 200, own_text: int = 50) -> bytes:
    """`depth` <div>s one inside the other, each with `own_text` characters of its own: the text of the
    outermost holds them all, so the text of all matches grows with the square of the depth."""
    opening = "".join(f"<div>{chr(65 + i % 26) * own_text}" for i in range(depth))
    return f"<html><head><title>Nest</title></head><body>{opening}{'</div>' * depth}</body></html>".encode()


def tiny_tags(size: int) -> bytes:
    """About `size` bytes of `<b></b>`: one parsed element per 7 bytes (about 460 bytes each in BeautifulSoup)."""
    return b"<html><head><title>Tags</title></head><body>" + b"<b></b>" * (size // 7) + b"</body></html>"


def long_text(chars: int) -> bytes:
    """One paragraph of `chars` × `é`: 2 bytes each in the page, 1 in a Python string, 6 in JSON (`\\u00e9`)."""
    return f"<html><head><title>Text</title></head><body><p>{'é' * chars}</p></body></html>".encode()
