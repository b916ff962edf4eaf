"""The real server (``oml serve`` in a subprocess on 127.0.0.1) and its page in headless Chromium (Selenium).

Chromium and its driver are Debian packages (``chromium``, ``chromium-driver``) that scripts/system-packages.sh
installs; without them this test fails (it does not skip), naming the script.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from oml_serve.plugin import build_service
from oml_serve.testing import fill_store

from oml_core import Host

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"oml serve exited with {process.returncode}: {process.stdout.read() if process.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return json.loads(answer.read())
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"oml serve did not answer {url} within {timeout_s} s")


@pytest.fixture
def server(served_run, tmp_path):
    store_url = f"sqlite:///{tmp_path / 'gallery.db'}"
    service = build_service(Host(), store_url, served_run["run_dir"], create=True)
    fill_store(service, served_run["root"], served_run["val"])
    service.store.close()
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "oml_core.cli",
        "serve",
        "--store",
        store_url,
        "--run",
        str(served_run["run_dir"]),
        "--port",
        str(port),
        "--upload-dir",
        str(tmp_path / "uploads"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/health", process)
        yield {"url": f"http://127.0.0.1:{port}", "health": health}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_page_in_headless_chromium_shows_the_top_k_of_a_dropped_image(server, served_run, tmp_path):
    assert CHROMIUM and DRIVER, (
        "headless Chromium is needed: install the Debian packages chromium and chromium-driver "
        "(bash scripts/system-packages.sh does it)"
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert server["health"]["store_items"] == len(served_run["val"])
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        driver.get(server["url"] + "/")
        WebDriverWait(driver, 30).until(lambda d: "items" in d.find_element(By.ID, "about").text)
        assert f"{len(served_run['val'])} items" in driver.find_element(By.ID, "about").text
        query = served_run["val"].iloc[2]
        driver.find_element(By.ID, "k").clear()
        driver.find_element(By.ID, "k").send_keys("4")
        driver.find_element(By.ID, "file").send_keys(str(served_run["root"] / query["path"]))
        WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .match")) == 4)
        # the thumbnails really loaded (served from the dataset root)
        WebDriverWait(driver, 30).until(
            lambda d: all(
                d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
                for img in d.find_elements(By.CSS_SELECTOR, "#results .match img")
            )
        )
        cards = driver.find_elements(By.CSS_SELECTOR, "#results .match")
        first = cards[0]
        assert first.get_attribute("data-id") == "2"
        assert first.find_element(By.CLASS_NAME, "label").text == f"label {int(query['label'])}"
        assert first.find_element(By.CLASS_NAME, "distance").text == "distance 0.0000"
        assert first.find_element(By.CLASS_NAME, "verdict").text == "same"
        assert "same" in first.get_attribute("class").split()
        distances = [float(c.find_element(By.CLASS_NAME, "distance").text.split()[1]) for c in cards]
        assert distances == sorted(distances)
        threshold = server["health"]["threshold"]
        for card, distance in zip(cards, distances):
            verdict = card.find_element(By.CLASS_NAME, "verdict").text
            assert verdict == ("same" if distance < threshold else "not same") or abs(distance - threshold) < 1e-3
        assert "matches" in driver.find_element(By.ID, "status").text
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
        if os.environ.get("OML_SERVE_SCREENSHOT"):
            shutil.copy(tmp_path / "page.png", os.environ["OML_SERVE_SCREENSHOT"])
        # a file that is not an image: the page shows the server's clear message
        bad = tmp_path / "notes.png"
        bad.write_bytes(b"not an image at all")
        driver.find_element(By.ID, "file").send_keys(str(bad))
        WebDriverWait(driver, 30).until(lambda d: "not an image" in d.find_element(By.ID, "status").text)
    finally:
        driver.quit()
    with urllib.request.urlopen(server["url"] + "/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    assert 'route="/search",status="200"' in metrics and 'route="/images/{id}",status="200"' in metrics
    assert 'oml_serve_errors_total{route="/search",status="400"}' in metrics
