"""Incident descriptions and comments: Markdown rendered to HTML safe to insert, with the
line breaks people typed, in the REST bodies and the events alike."""

import pytest

from incidents import services
from incidents.markup import render_markdown


def test_single_newlines_are_line_breaks_and_markdown_renders():
    html = render_markdown("First line\nsecond line\n\n- **one**\n- `two`")
    assert "First line<br" in html
    assert "<strong>one</strong>" in html
    assert "<code>two</code>" in html


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="https://x.example" onclick="alert(1)">x</a>',
        "<iframe src=https://evil.example></iframe>",
    ],
)
def test_nothing_executable_survives(text):
    html = render_markdown(text)
    for bad in ("<script", "onerror", "javascript:", "onclick", "<iframe", "<img"):
        assert bad not in html.lower()


def test_links_are_kept_without_passing_the_referrer():
    html = render_markdown("See [the runbook](https://wiki.example/runbook).")
    assert 'href="https://wiki.example/runbook"' in html
    assert 'rel="noopener noreferrer nofollow"' in html


@pytest.mark.django_db
def test_rest_gives_comments_and_descriptions_as_safe_html(api_client, alice, take, token_for):
    _alert, incident = take(alice)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(alice)}")
    response = api_client.post(
        f"/api/incidents/{incident.pk}/comments/",
        {"body": "Blocked at the edge.\nWatching <b onmouseover=x>it</b>."},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert "Blocked at the edge.<br" in response.json()["body_html"]
    assert "onmouseover" not in response.json()["body_html"]
    services.update_incident(incident.pk, {"description": "Line one\nLine two"}, actor=alice)
    body = api_client.get(f"/api/incidents/{incident.pk}/").json()
    assert body["description"] == "Line one\nLine two"
    assert "Line one<br" in body["description_html"]
