"""The router's chat page in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
Selenium), in front of the session's live vLLM app (tests/serve/conftest.py) with the online loop on.

A user at phone width opens the page, is told the key is missing, enters it, asks a question with the
keyboard, watches the answer stream in with its cited sources, gives a thumbs-down with a comment, and
the assessment (comment PII-scrubbed) is on that request's MLflow trace. Screenshots are written to
``test-artifacts/chat_page/`` (or ``$LLMFLOW_TEST_ARTIFACTS/chat_page``).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fixtures.mlflow_store import sqlite_uri
from tests.serve.llm_app_settings import API_KEY, API_KEY_ENV

pytestmark = pytest.mark.integration

PREFIX = "/ragchat"
PHONE = (390, 844)  # CSS pixels of a common phone
QUESTION = "What does the assert statement do?"
COMMENT = "Wrong: it never names the exception. Mail me at jane.doe@example.com"
ARTIFACTS = Path(os.environ.get("LLMFLOW_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.fail("the chat page test needs Debian's chromium and chromium-driver: scripts/install.sh installs "
                    "them as root (apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture(scope="module")
def chat_router(llm_app, rag_index_dir, tiny_model_dir, tmp_path_factory):
    from ray import serve
    from ray.serve.context import _get_global_client

    from serve.online_eval.config import OnlineEvalConfig
    from serve.router.app import build_router
    from serve.router.config import RouterConfig

    online_dir = tmp_path_factory.mktemp("chat_online")
    online = OnlineEvalConfig(tracking_uri=sqlite_uri(online_dir), embed_queries=False, sample_rate=1.0,
                              judge_rate=0.0, feedback_path=str(online_dir / "feedback.jsonl"))
    config = RouterConfig(index_dir=str(rag_index_dir), fallback="generate", max_source_chars=300,
                          tokenizer=str(tiny_model_dir), max_model_len=512, default_max_tokens=24, num_cpus=0.5,
                          model_version="tiny v1", online_eval=online)
    handle = serve.get_deployment_handle(llm_app["deployment"], app_name=llm_app["app_name"])
    os.environ[API_KEY_ENV] = API_KEY
    serve.run(build_router(config, handle, api_key_env=API_KEY_ENV), name="rag-router-chat", route_prefix=PREFIX)
    yield {"url": f"http://127.0.0.1:{_get_global_client().http_config.port}{PREFIX}/",
           "tracking_uri": online.tracking_uri}
    serve.delete("rag-router-chat")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={PHONE[0]},{PHONE[1]}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def shot(driver, name: str) -> Path:
    out = ARTIFACTS / "chat_page"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    # the whole page, not just the phone's first screen
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(PHONE[0], max(PHONE[1], height + 120))
    assert driver.save_screenshot(str(path)), path
    driver.set_window_size(*PHONE)
    return path


def test_ask_stream_cite_and_thumbs_down_reach_the_trace(chat_router, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    import mlflow

    wait = WebDriverWait(browser, 90)
    browser.get(chat_router["url"])
    find = lambda css: browser.find_element(By.CSS_SELECTOR, css)
    # Labelled controls, the served model and its version on the page.
    for control in ("api-key", "question", "comment"):
        assert find(f"label[for={control}]").get_attribute("textContent").strip(), control
    assert find("#model-name").text and "tiny v1" in find("#model-version").text
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"), \
        "the page scrolls sideways at phone width"

    # Without the key the router refuses, and the page says why.
    find("#question").send_keys(QUESTION, Keys.ENTER)
    wait.until(lambda d: find("#error").text)
    assert "API key" in find("#error").text

    # Count the answer's renders: a streamed answer grows in several steps, not in one.
    browser.execute_script("""
        window.answerRenders = 0;
        new MutationObserver(() => { window.answerRenders += 1; })
            .observe(document.getElementById('answer'), {childList: true, characterData: true, subtree: true});""")
    find("#api-key").send_keys(API_KEY)
    find("#question").send_keys(Keys.ENTER)  # the keyboard alone asks
    wait.until(lambda d: find("#request-id").text and find("#answer").get_attribute("aria-busy") == "false")
    assert not find("#error").text, find("#error").text
    answer, request_id = find("#answer").text, find("#request-id").text
    assert answer.strip() and request_id.startswith("chatcmpl-rag-")
    assert browser.execute_script("return window.answerRenders") > 2, "the answer arrived in one piece, not streamed"
    sources = browser.find_elements(By.CSS_SELECTOR, "#sources li")
    assert sources and find("#route").text == "rag"
    for li in sources:
        title, snippet = li.find_element(By.TAG_NAME, "strong").text, li.find_element(By.CLASS_NAME, "snippet").text
        assert title.startswith("[") and len(title) > 4 and len(snippet) > 40, (title, snippet)
    assert any("assert" in li.text for li in sources)
    answered = shot(browser, "1_answer_with_sources")

    # Thumbs down with a comment, sent with the request id.
    find("#thumb-down").click()
    assert find("#thumb-down").get_attribute("aria-pressed") == "true"
    find("#comment").send_keys(COMMENT)
    find("#send-feedback").click()
    wait.until(lambda d: "trace" in find("#feedback-status").text or "not recorded" in find("#feedback-status").text)
    trace_id = find("#feedback-status").get_attribute("data-trace-id")
    assert trace_id, find("#feedback-status").text
    voted = shot(browser, "2_feedback_recorded")
    assert answered.stat().st_size > 10_000 and voted.stat().st_size > 10_000

    # The vote is an assessment on the trace of exactly that request, its comment PII-scrubbed.
    mlflow.set_tracking_uri(chat_router["tracking_uri"])
    trace = mlflow.get_trace(trace_id)
    assert trace.info.tags["llmflow.request_id"] == request_id
    assert trace.info.tags["model_version"] == "tiny v1"
    [vote] = [a for a in trace.info.assessments if a.name == "user_feedback"]
    assert vote.feedback.value is False and vote.source.source_type == "HUMAN"
    assert vote.source.source_id.startswith("key:") and API_KEY not in vote.source.source_id  # the voter, not a claim
    assert "never names the exception" in vote.rationale and "<EMAIL>" in vote.rationale
    assert "jane.doe@example.com" not in json.dumps(trace.to_dict())
