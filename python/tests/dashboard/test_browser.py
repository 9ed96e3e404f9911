"""The dashboard in a real browser: Debian's chromium, headless, driven by Selenium through
chromium-driver. Tasks come from Python and from Node; the page follows them live; a failed task
is opened, read, requeued and seen to succeed; the screenshots are checked by layout and pixels,
and the overview's is saved (as docs/dashboard.png, the README's picture, when
DOTHIS_SCREENSHOT=docs: `DOTHIS_SCREENSHOT=docs pytest python/tests/dashboard/test_browser.py`; else
in the test's temporary folder, so that a test run leaves the tree as it was)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
NODE_CLIENT = REPO / "node-client"
README_SCREENSHOT = REPO / "docs" / "dashboard.png"
FAILED_RGB = (198, 40, 40)  # .badge.failed in static/dashboard.css
WAIT = 30

if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
    pytest.skip("needs chromium and chromium-driver: apt-get install -y chromium chromium-driver",
                allow_module_level=True)  # fmt: skip
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

NODE_ENQUEUE = """
import { Queue } from './dist/esm/index.js';
const queue = new Queue(process.env.DOTHIS_QUEUE, { url: process.env.DOTHIS_URL });
for (const text of ['from node 1', 'from node 2', 'from node 3']) {
  await queue.enqueue('echo', { text });
}
await queue.close();
"""


BROKEN = threading.Event()  # the worker runs in a thread of this process


def flaky(order: str) -> str:
    """Fails while BROKEN is set."""
    if BROKEN.is_set():
        raise RuntimeError(f"cannot ship order {order}: the carrier is down")
    return f"shipped {order}"


def always_fails(order: str) -> None:
    raise ValueError(f"order {order} does not exist")


@pytest.fixture
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,760", "--force-device-scale-factor=1",
                     "--hide-scrollbars"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    yield driver
    driver.quit()


def pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB(A) rows of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, data, header = 8, b"", b""
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        chunk = png[position + 8 : position + 8 + length]
        header = chunk if kind == b"IHDR" else header
        data += chunk if kind == b"IDAT" else b""
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    size = 4 if colour == 6 else 3
    raw, rows, previous = zlib.decompress(data), [], bytearray(width * size)
    stride = width * size + 1
    for y in range(height):
        kind, line = raw[y * stride], bytearray(raw[y * stride + 1 : (y + 1) * stride])
        for x in range(len(line)):
            left = line[x - size] if x >= size else 0
            up, corner = previous[x], previous[x - size] if x >= size else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up),
                           (abs(guess - corner), 2, corner))  # fmt: skip
                line[x] = (line[x] + near[2]) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def png_size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def colour_at(png: bytes, x: int, y: int) -> tuple[int, int, int]:
    width, _, rows = pixels(png)
    size = len(rows[0]) // width
    r, g, b = rows[y][x * size : x * size + 3]
    return r, g, b


def count(driver: Any, queue: str, state: str) -> str:
    """The number shown, read in one step (the live block may be replaced at any time)."""
    return str(driver.execute_script(
        "var node = document.querySelector(arguments[0]); return node ? node.textContent : ''",
        f'[data-count="{queue}|{state}"]'))  # fmt: skip


def wait_for(driver: Any, condition: Any, message: str) -> Any:
    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(lambda d: condition(), message)


def enqueue_from_node(url: str, queue: str) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_CLIENT / "dist" / "esm" / "index.js").exists():
        pytest.skip("needs node and the built node-client (bash scripts/setup.sh)")
    run = subprocess.run([node, "--input-type=module", "--eval", NODE_ENQUEUE], cwd=NODE_CLIENT,
                         env={**os.environ, "DOTHIS_URL": url, "DOTHIS_QUEUE": queue},
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr


def test_the_dashboard_in_a_browser(serve, browser, queue, url, start_worker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dothis import Registry

    BROKEN.set()
    flaky_task = queue.enqueue("flaky", order="A-1042")
    queue.enqueue("always_fails", order="A-0000")
    served = serve(poll_interval=0.2, queues=[queue.name])
    name = queue.name

    browser.get(served.base + "/")
    assert count(browser, name, "pending") == "2"
    browser.execute_script("window.notReloaded = true")
    enqueue_from_node(url, name)
    queue.enqueue("echo", text="from python 1")
    queue.enqueue("echo", text="from python 2")
    wait_for(browser, lambda: count(browser, name, "pending") == "7", "pending never showed 7")
    assert browser.execute_script("return window.notReloaded") is True  # live, not reloaded

    registry = Registry()
    registry.add(flaky, name="flaky")
    registry.add(always_fails, name="always_fails")
    registry.add(lambda text: text, name="echo")
    start_worker(registry, pool="thread")
    wait_for(browser, lambda: (count(browser, name, "succeeded"), count(browser, name, "failed"))
             == ("5", "2"), "the worker's results never showed")  # fmt: skip
    assert browser.execute_script("return window.notReloaded") is True

    browser.get(f"{served.base}/tasks?queue={name}&state=failed")
    check_failed_list(browser, tmp_path / "dashboard.png")
    browser.find_element(By.LINK_TEXT, flaky_task.id).click()
    traceback = browser.find_element(By.ID, "traceback")
    assert "RuntimeError: cannot ship order A-1042" in traceback.text
    assert "Traceback" in traceback.text
    check_task_page(browser, traceback)

    BROKEN.clear()
    browser.find_element(By.CSS_SELECTOR, 'button[data-action="requeue"]').click()
    alert = wait_for(browser, lambda: _alert(browser), "no confirmation was asked")
    assert flaky_task.id in alert.text
    alert.accept()
    wait_for(browser, lambda: "requeued 1 task" in _text(browser, "notice"), "no notice")
    browser.execute_script("window.notReloaded = true")
    wait_for(browser, lambda: _text(browser, "task-state") == "successful",
             "the requeued task never showed as successful")  # fmt: skip
    assert browser.execute_script("return window.notReloaded") is True
    assert flaky_task.wait(timeout=10) == "shipped A-1042"

    browser.get(served.base + "/")
    wait_for(browser, lambda: count(browser, name, "succeeded") == "6", "overview not updated")
    check_overview(browser, name)


def _alert(driver: Any) -> Any:
    try:
        return driver.switch_to.alert
    except Exception:
        return None


def _text(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(
        "var node = document.getElementById(arguments[0]); return node ? node.innerText : ''",
        element_id))  # fmt: skip


def check_failed_list(browser: Any, screenshot: Path) -> None:
    """The failed badge is painted in the CSS's colour, at least its min-width wide, and its cell
    around it is not; this page's screenshot is the README's."""
    badge = browser.find_element(By.CSS_SELECTOR, ".badge.failed")
    box = badge.rect
    assert box["width"] >= 72 and 12 <= box["height"] <= 30
    png = badge.screenshot_as_png
    width, height, _ = pixels(png)
    assert abs(width - box["width"]) <= 1 and abs(height - box["height"]) <= 1
    colour = colour_at(png, 2, height // 2)
    assert all(abs(a - b) <= 6 for a, b in zip(colour, FAILED_RGB, strict=True)), colour
    cell = badge.find_element(By.XPATH, "./ancestor::td").screenshot_as_png
    assert colour_at(cell, 2, 2) == (255, 255, 255)  # the cell's own background
    png = browser.get_screenshot_as_png()
    assert png_size(png) == tuple(browser.execute_script(
        "return [window.innerWidth, window.innerHeight]"))  # fmt: skip
    saved = README_SCREENSHOT if os.environ.get("DOTHIS_SCREENSHOT") == "docs" else screenshot
    saved.write_bytes(png)


def check_overview(browser: Any, name: str) -> None:
    """The queue's row lies inside the page, under the header bar."""
    header = browser.find_element(By.TAG_NAME, "header").rect
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-queue="{name}"]').rect
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert row["y"] >= header["y"] + header["height"]
    assert row["x"] >= 0 and row["x"] + row["width"] <= width + 1
    bar = browser.find_element(By.TAG_NAME, "header").screenshot_as_png
    assert colour_at(bar, 2, 2) == (0x11, 0x18, 0x27)  # the header bar's colour in the CSS


def check_task_page(browser: Any, traceback: Any) -> None:
    """The traceback's box lies inside the page, under the error's heading, in its pink."""
    width = browser.execute_script("return document.documentElement.clientWidth")
    heading = browser.find_element(By.XPATH, "//h2[text()='Error']").rect
    box = traceback.rect
    assert box["y"] > heading["y"] and box["x"] > 0 and box["x"] + box["width"] <= width + 1
    assert colour_at(traceback.screenshot_as_png, 4, 4) == (0xFF, 0xF5, 0xF5)
