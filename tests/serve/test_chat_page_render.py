"""The chat page's server-side part: the config block the router fills in (no browser needed)."""
from __future__ import annotations

import json
import re

from serve.router.core import snippet
from serve.router.page import render_chat_page


def config_of(html: str) -> dict:
    block = re.search(r'<script id="llmflow-config" type="application/json">(.*?)</script>', html, re.DOTALL)
    return json.loads(block.group(1))


def test_page_knows_its_prefix_auth_and_model():
    cfg = config_of(render_chat_page("/rag/", True, "grpo", "llmflow-rag v3"))
    assert cfg == {"base": "/rag", "auth_required": True, "model": "grpo", "model_version": "llmflow-rag v3"}
    assert config_of(render_chat_page("", False, "tiny", None))["auth_required"] is False


def test_a_hostile_model_name_cannot_close_the_script_block():
    html = render_chat_page("", False, "</script><script>alert(1)</script>", None)
    assert html.count("</script>") == 2  # the config block's and the page script's own
    assert config_of(html)["model"] == "</script><script>alert(1)</script>"


def test_every_form_control_has_a_label_and_the_page_fits_a_phone():
    html = render_chat_page("", True, "m", None)
    for control in re.findall(r'<(?:input|textarea)[^>]*id="([^"]+)"', html):
        assert f'<label for="{control}">' in html, control
    assert 'name="viewport" content="width=device-width' in html


def test_snippet_cuts_at_a_word_boundary():
    assert snippet("short  text\nhere") == "short text here"
    cut = snippet("word " * 100, max_chars=23)
    assert cut == "word word word word …"
