"""Take the README's screenshots of the pages: ``python -m tests.pages.screenshots [DIR]``.

Starts the daemon of tests/pages/conftest.py, waits for its drifting model's candidate,
and writes ``model-{desktop,phone}.png`` and ``runbook-{desktop,phone}.png`` to DIR
(default docs/screenshots).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.pages._browser import Browser
from tests.pages.conftest import DRIFTING, daemon_config
from tests.pages.test_pages import SCREENSHOTS, VIEWPORTS
from tests.services import Services

PAGES = {
    "model": f"/models/{DRIFTING}",
    "runbook": f"/runbooks/KMeansFeatureDrift.html?model={DRIFTING}",
}


def main(out: Path) -> None:
    """Write the screenshots to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        services = Services(work / "services")
        browser = None
        try:
            config = work / "monitor.yml"
            config.write_text(yaml.safe_dump(daemon_config(work / "state", time.time())))
            daemon = services.kmeans_monitor("run", "--config", str(config), ready_path="/readyz")
            deadline = time.monotonic() + 90
            # Wait for a few runs of drift so that the page has history to show.
            while len(daemon.get_json(f"/api/models/{DRIFTING}")["runs"]) < 8:
                if time.monotonic() > deadline:
                    raise SystemExit(json.dumps(daemon.get_json(f"/api/models/{DRIFTING}")))
                time.sleep(1)
            browser = Browser(work)
            for name, path in PAGES.items():
                for viewport, (width, height) in VIEWPORTS.items():
                    page = browser.page(daemon.url + path, width, height, mobile=width < 800)
                    page.screenshot(out / f"{name}-{viewport}.png")
                    print(f"wrote {out / f'{name}-{viewport}.png'}")
        finally:
            if browser is not None:
                browser.close()
            services.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SCREENSHOTS)
