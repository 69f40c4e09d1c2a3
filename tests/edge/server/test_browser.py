"""The page in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Set VIGIL360_SCREENSHOT_DIR to also keep the screenshot there (e.g. docs/screenshots).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
    """Selenium's own wait for a page condition (a browser offers no event a test could wait on)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(None, timeout, poll_frequency=0.1).until(lambda _: predicate())
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}") from None


AXE_VERSION = "4.14.1"


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core from the npm registry, cached outside the repository (never committed)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vigil360" / f"axe-core-{AXE_VERSION}"
    script = cache / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None:
            if os.environ.get("CI") == "true":
                raise RuntimeError("CI=true but npm is missing: the accessibility check needs axe-core")
            pytest.skip("needs npm to fetch axe-core (apt-get install -y npm)")
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--prefix", str(cache), f"axe-core@{AXE_VERSION}", "--no-save",
                        "--no-audit", "--no-fund", "--silent"], check=True, timeout=300)
    return script.read_text(encoding="utf-8")


def _serious_violations(browser, axe_source: str) -> list[str]:
    browser.execute_script(axe_source)
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done(String(e)));"
    )
    assert isinstance(result, list), result
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in result if v["impact"] in ("serious", "critical")]


def _set_width(browser, width: int) -> None:
    # Headless windows have a minimum size; the device-metrics override gives a true 320 px viewport.
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})


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
        assert browser.find_element(By.ID, "announce").get_attribute("aria-live") == "polite"
        assert browser.find_element(By.ID, "announce-urgent").get_attribute("aria-live") == "assertive"
        app.state.runner.start()
        items = _wait(
            lambda: browser.find_elements(By.CSS_SELECTOR, "#alerts li, #urgent li"),
            60,
            "an alert in the list",
        )
        first = alerts[0]
        region = "urgent" if first.urgent else "alerts"
        shown = browser.find_element(By.CSS_SELECTOR, f"#{region} li .sentence").text
        assert first.sentence in shown, (first.sentence, shown)
        assert items[0].get_attribute("data-entity") == first.entity_id
        # What a screen reader says is the sentence, not the details (role, risk, time).
        said = browser.execute_script(
            "return document.getElementById(arguments[0]).textContent",
            "announce-urgent" if first.urgent else "announce")
        assert first.sentence in said and "risk" not in said and not re.search(r"\d:\d\d", said), said
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
        # The page shows it once the server's answer is back: wait for that, do not race it.
        _wait(lambda: browser.find_element(By.ID, "mute").get_attribute("aria-pressed") == "true", 10,
              "the toggle to show the change")
        assert browser.find_element(By.ID, "mute").text == "Mute speech", "a toggle keeps its name"
        assert httpx.get(f"{server.url}/v1/config").json()["speech"]["muted"] is True
        _wait(lambda: not app.state.runner.running, 60, "the loop to finish")

    print(f"screenshot: {screenshot}")
    keep = os.environ.get("VIGIL360_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(keep) / "live-page.png")
        print(f"screenshot kept: {Path(keep) / 'live-page.png'}")


def test_page_has_no_serious_accessibility_violations_and_reflows_at_320_px(
    browser, axe_source, make_scripted_loop
) -> None:
    from selenium.webdriver.common.by import By

    from vigil360.edge.events import AlertEvent

    app = create_app(make_scripted_loop(), ServerOptions(run_loop=False))
    with BackgroundServer(app) as server:
        # An alert from a minute before the page loads: history, never announced.
        app.state.hub.publish(AlertEvent(
            frame_index=3, frame_time_s=0.1, emit_time=time.time() - 60, entity_id="e4", clock_hour=6, yaw=179.0,
            pitch=-5.0, risk=0.9, urgent=True, sentence="Person in a long grey coat approaching you fast, 6 o'clock."))
        _wait(lambda: app.state.hub.stats().published.get("alert") == 1, 10, "the hub to take the alert")
        for width in (1200, 320):
            _set_width(browser, width)
            browser.get(server.url + "/")
            _wait(lambda: browser.find_element(By.ID, "connection").get_attribute("data-state") == "open", 20,
                  "the page's WebSocket")
            _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#history li"), 20, "the earlier alert as history")
            assert _serious_violations(browser, axe_source) == [], width
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"sideways scrolling at {width} px: {overflow} px"
            assert browser.find_elements(By.CSS_SELECTOR, "#alerts li, #urgent li") == []
            assert browser.execute_script("return document.getElementById('announce').textContent "
                                          "+ document.getElementById('announce-urgent').textContent") == ""


@pytest.mark.parametrize(("fragment", "said"), [("", "needs a token"), ("#token=wrong-token-0123456789", "wrong")])
def test_page_says_when_its_token_is_missing_or_wrong(browser, make_scripted_loop, fragment, said) -> None:
    from selenium.webdriver.common.by import By

    app = create_app(make_scripted_loop(), ServerOptions(run_loop=False, token="right-token-0123456789abc"))
    with BackgroundServer(app) as server:
        browser.get(server.url + "/" + fragment)
        _wait(lambda: said in browser.find_element(By.ID, "connection").text, 20, f"the page to say {said!r}")
