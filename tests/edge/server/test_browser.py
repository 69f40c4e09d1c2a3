"""The page in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Set VIGIL360_SCREENSHOT_DIR to also keep the screenshot there (e.g. docs/screenshots).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from vigil360.edge.server.app import ServerOptions, create_app
from vigil360.edge.server.running import BackgroundServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

_HAVE_BROWSER = CHROMIUM.exists() and CHROMEDRIVER.exists()
if not _HAVE_BROWSER and os.environ.get("CI") == "true":
    # CI installs chromium itself (`make test`); a skip there would hide a broken install step.
    raise RuntimeError("CI=true but /usr/bin/chromium or /usr/bin/chromedriver is missing")
pytestmark = pytest.mark.skipif(
    not _HAVE_BROWSER,
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
)


@pytest.fixture
def browser(tmp_path: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,1400",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_announces_an_alert_and_works_from_the_keyboard(
    browser, make_clip_loop, serve_clip, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    loop = make_clip_loop(serve_clip, realtime=True)
    alerts: list = []
    loop.add_sink(lambda event: alerts.append(event) if event.type == "alert" else None)
    app = create_app(loop, ServerOptions(run_loop=False))
    with BackgroundServer(app) as server:
        browser.get(server.url + "/")
        _wait(
            lambda: browser.find_element(By.ID, "connection").get_attribute("data-state") == "open",
            20,
            "the page's WebSocket",
        )
        assert browser.find_element(By.ID, "alerts").get_attribute("aria-live") == "polite"
        assert browser.find_element(By.ID, "urgent").get_attribute("aria-live") == "assertive"
        app.state.runner.start()
        items = _wait(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#alerts li, #urgent li"),
            60,
            "an alert in a live region",
        )
        first = alerts[0]
        region = "urgent" if first.urgent else "alerts"
        shown = browser.find_element(By.CSS_SELECTOR, f"#{region} li .sentence").text
        assert first.sentence in shown, (first.sentence, shown)
        assert items[0].get_attribute("data-entity") == first.entity_id
        _wait(
            lambda: browser.execute_script("return document.getElementById('frame').naturalWidth") > 0,
            20,
            "the preview image",
        )
        _wait(lambda: "Tracked:" in browser.find_element(By.ID, "tracked").text, 10, "track outlines")
        screenshot = tmp_path / "live-page.png"
        browser.save_screenshot(str(screenshot))

        # Keyboard only: Tab from the top of the page reaches the labelled mute button; Space presses it.
        for control in browser.find_elements(By.CSS_SELECTOR, "button, select, input"):
            name = control.text or browser.execute_script(
                "return Array.from(arguments[0].labels || []).map(l => l.textContent).join(' ')", control
            )
            assert name.strip(), control.get_attribute("id")
        body = browser.find_element(By.TAG_NAME, "body")
        body.click()
        focused = None
        for _ in range(6):
            browser.switch_to.active_element.send_keys(Keys.TAB)
            focused = browser.switch_to.active_element.get_attribute("id")
            if focused == "mute":
                break
        assert focused == "mute"
        browser.switch_to.active_element.send_keys(Keys.SPACE)
        _wait(lambda: loop.settings.speech.muted, 10, "mute to reach the loop")
        assert browser.find_element(By.ID, "mute").get_attribute("aria-pressed") == "true"
        assert httpx.get(f"{server.url}/v1/config").json()["speech"]["muted"] is True
        _wait(lambda: not app.state.runner.running, 60, "the loop to finish")

    print(f"screenshot: {screenshot}")
    keep = os.environ.get("VIGIL360_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / "live-page.png")
        print(f"screenshot kept: {Path(keep) / 'live-page.png'}")
