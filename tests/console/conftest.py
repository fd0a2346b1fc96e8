"""A real headless Chromium driven by Selenium, for the console's end-to-end tests. Skipped, with
the command that installs it, on a machine without the browser."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

INSTALL = "apt-get install -y chromium chromium-driver"


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One browser for the session; each test opens the console afresh (tokens live in the
    page's memory only, so a fresh load is a fresh session)."""
    binary, driver_path = _browser(), shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip(f"no headless Chromium + chromedriver: install them with `{INSTALL}`")
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("selenium is missing: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
