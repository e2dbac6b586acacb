"""Headless Debian Chromium for the browser tests (selenium): its flags, and the skip where it is missing.

Test modules import it (``from browser import chromium``; ``tests/`` is on ``sys.path``
as the folder of the root conftest) and wrap it in their own fixture.
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from typing import Iterator

import pytest

# Everything but the server under test resolves nowhere: the page must not reach out,
# and Chromium's own background traffic goes nowhere either.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--autoplay-policy=no-user-gesture-required", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-domain-reliability", "--no-first-run",
                  "--disable-client-side-phishing-detection", "--use-fake-device-for-media-stream")


@contextmanager
def chromium(what: str = "this browser test") -> Iterator:
    """A headless Chromium driven by selenium, its console log kept (``driver.get_log("browser")``).

    Args:
        what: the test that needs it, for the skip message.
    Yields:
        the ``webdriver.Chrome``; it quits on exit.
    Raises:
        pytest's skip, naming what is missing, where Debian's chromium or chromium-driver
        (which scripts/setup.sh installs where it can) is not on PATH.
    """
    chromium_bin, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium_bin or not driver:
        pytest.skip(f"{what} needs Debian's chromium and chromium-driver, which scripts/setup.sh "
                    f"installs where it can; missing here: {'chromium' if not chromium_bin else 'chromedriver'}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium_bin
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def severe_errors(driver) -> list[dict]:
    """The console's SEVERE entries since the last call (reading the log empties it)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
