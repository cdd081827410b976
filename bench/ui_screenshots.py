"""Screenshots of the web UI's main pages for docs/ui.md (not a benchmark; lives here beside
the other scripts that drive a real server).

Builds a small store (the web tests' store plus a few more versions), starts ``package-storage
serve --store DIR --manage-address ...`` on loopback, signs in with Debian's Chromium through
Playwright and writes ``docs/ui-*.png``.

    python bench/ui_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for folder in ("tests", "tests/store", "tests/web"):
    sys.path.insert(0, str(ROOT / folder))

from chromium_browser import chromium  # noqa: E402
from test_service import make_package  # noqa: E402
from web_helpers import build_store  # noqa: E402

from live_manage import start_server  # noqa: E402

SHOTS = (
    ("signin", "/signin", None),
    ("overview", "/", None),
    ("stage", "/stages/snapshot", None),
    ("package", "/packages/hello_nginx?version=1.1.0", None),
    ("preview", "/diff?a=staging&b=production", None),
    ("confirm", "/diff?a=staging&b=production", "Promote to production"),
    ("history", "/history", None),
    ("revisions", "/distributions/production", None),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ui-shots-") as tmp:
        work = Path(tmp)
        store = build_store(work / "store", work / "packages")
        svc = store.service("ci-snapshot")
        for version in ("1.3.0", "1.4.0"):
            svc.publish(make_package(work / "packages", version))
        release = store.service("release-manager")
        release.promote("hello_nginx", "1.2.0", to="staging", reason="candidate for 8.13")
        release.tag("production", "8.12.0", reason="Kibana 8.12 release")
        _, secret = store.service("setup").create_token("release-manager", ["admin"])
        store.close()
        with start_server(work / "store", work / "server.log") as server, chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.goto(server.manage_url + "/signin")
            page.screenshot(path=str(args.out / "ui-signin.png"))
            page.get_by_label("Token").fill(secret)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Overview").wait_for()
            for name, path, click in SHOTS[1:]:
                page.goto(server.manage_url + path)
                if click:
                    page.get_by_role("button", name=click).first.click()
                    page.get_by_label("Reason").fill("release for Kibana 8.13")
                page.screenshot(path=str(args.out / f"ui-{name}.png"), full_page=True)
                print(f"wrote {args.out / f'ui-{name}.png'}")


if __name__ == "__main__":
    main()
