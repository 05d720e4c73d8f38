"""A real headless Chromium for tests of self-contained pages: a screenshot, and the page's own network requests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

# Chromium makes requests of its own (time sync, dictionaries, accounts); these switches cut most of
# them, and the rest are told apart by their network isolation key (the page's are file://).
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
)


def chromium() -> str | None:
    """The Chromium executable, or ``None`` when it is not installed (``make test`` installs it)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(page: Path, screenshot: Path, size: tuple[int, int], work: Path) -> list[str]:
    """Screenshot ``page`` at ``size`` (width, height); return every non-local URL the page requested."""
    net_log = work / "net-log.json"
    done = subprocess.run(
        [
            chromium(),
            *FLAGS,
            f"--window-size={size[0]},{size[1]}",
            f"--user-data-dir={work / 'profile'}",
            f"--log-net-log={net_log}",
            f"--screenshot={screenshot}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and screenshot.is_file(), f"chromium failed:\n{done.stderr[-2000:]}"
    log = json.loads(net_log.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params", {})
        if names.get(event["type"]) != "URL_REQUEST_START_JOB":
            continue
        if str(params.get("network_isolation_key", "")).startswith("file://"):
            url = params.get("url", "")
            if not url.startswith(("file:", "data:")):
                urls.append(url)
    return urls
