"""The web chat page in a real headless browser: Debian's chromium driven by Playwright.

`internvl-chat web` runs as a subprocess on a loopback port; the browser uploads an image,
sends a question and watches the answer grow (recorded by a MutationObserver) until done.
"""

import base64
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest
from PIL import Image

from internvl_chat.model.presets import init_model_dir

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web_server(tmp_path_factory):
    model_dir = init_model_dir("tiny", tmp_path_factory.mktemp("tiny"))
    port = _free_port()
    log = open(tmp_path_factory.mktemp("log") / "web.log", "w+")
    cmd = [sys.executable, "-m", "internvl_chat.cli", "web", "--model", str(model_dir), "--port", str(port),
           "--model-name", "tiny", "--threads", "1", "--default-max-tokens", "48", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"web server exited: {open(log.name).read()}"
            assert time.monotonic() < deadline, "web server did not come up in 90 s"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_upload_ask_and_see_a_streamed_answer(web_server, tmp_path):
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), "the browser test needs Debian's chromium: apt-get install chromium"
    image = tmp_path / "green.png"
    Image.new("RGB", (80, 60), (20, 200, 40)).save(image)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(web_server + "/")
            page.locator(".ivl-upload input[type=file]").set_input_files(str(image))
            page.wait_for_selector("text=Image loaded (80x60)", timeout=20_000)
            # record every text the answer bubble shows, to see it arrive piece by piece
            page.evaluate("""() => {
                window.answerTexts = [];
                new MutationObserver(() => {
                    const el = document.querySelector('.ivl-answer');
                    if (el && el.innerText !== window.answerTexts.at(-1)) window.answerTexts.push(el.innerText);
                }).observe(document.body, {subtree: true, childList: true, characterData: true});
            }""")
            page.locator(".ivl-question input").fill("what color is it")
            page.locator(".ivl-send").click()
            page.wait_for_selector(".ivl-answer-done", timeout=60_000)
            final = page.locator(".ivl-answer").inner_text()
            seen = page.evaluate("window.answerTexts")
            status = page.locator(".ivl-status").inner_text()
            asked = page.locator(".ivl-messages").inner_text()
            # another image starts a new conversation
            other = tmp_path / "small.png"
            Image.new("RGB", (30, 20), (0, 0, 0)).save(other)
            page.locator(".ivl-upload input[type=file]").set_input_files(str(other))
            page.wait_for_selector("text=Image loaded (30x20)", timeout=20_000)
            assert page.locator(".ivl-answer").count() == 0
        finally:
            browser.close()
    assert "what color is it" in asked
    assert status.startswith("Done (")
    partial = [t for t in seen if t and t != final]
    assert len(partial) >= 2, f"the answer did not stream: {seen!r}"
    assert all(final.startswith(t) for t in partial)  # each partial view is a prefix of the final answer
    # the page shows the model's own greedy answer: the same as the HTTP API gives for this image and question
    reply = httpx.post(web_server + "/v1/chat/completions", timeout=60, json={
        "model": "tiny", "max_tokens": 48, "temperature": 0, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,"
                                                       + base64.b64encode(image.read_bytes()).decode()}},
            {"type": "text", "text": "what color is it"}]}]}).json()
    expected = reply["choices"][0]["message"]["content"]
    assert " ".join(final.split()) == " ".join(expected.split())
