"""docs/trial_files.md's contents list (added 2026-12-08, when a user test found the 144 kB
guide hard to navigate): every in-page link names a heading that exists (GitHub's anchor
rule: lower case, punctuation other than hyphens dropped, spaces as hyphens), and every
section heading is listed."""

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "trial_files.md"


def anchor(title: str) -> str:
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def test_every_contents_link_names_a_heading_and_every_heading_is_listed():
    text = GUIDE.read_text()
    headings = [line.lstrip("#").strip() for line in text.splitlines()
                if re.match(r"^#{2,3} ", line)]
    anchors = {anchor(title) for title in headings}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links, "no contents list"
    assert not [link for link in links if link not in anchors]
    assert not [title for title in headings if anchor(title) not in links]
