"""Open an HTML report in headless Chromium and save a screenshot: python scripts/screenshot_report.py REPORT PNG."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

# The flags keep Chromium off the network (this machine has none) and out of any user profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def open_browser(width: int = 1300, height: int = 2400):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--window-size={width},{height}")
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='gensemble-chromium-')}")
    opts.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def screenshot(report: Path, png: Path) -> None:
    driver = open_browser()
    try:
        driver.get(report.resolve().as_uri())
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
