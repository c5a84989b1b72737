"""Render an HTML page (e.g. an ``rsuper compare`` case page) to a PNG, offscreen.

A documentation tool, not part of the package: it needs PySide6 with Qt WebEngine, which the project does
not depend on. Install it in a throwaway environment and run::

    python -m venv /tmp/webvenv && /tmp/webvenv/bin/pip install PySide6
    QT_QPA_PLATFORM=offscreen QTWEBENGINE_CHROMIUM_FLAGS="--no-sandbox --disable-gpu" \
        /tmp/webvenv/bin/python docs/tools/html_screenshot.py PAGE.html OUT.png [--width 1200] [--height 1400]

Qt WebEngine is used rather than a browser driver because it installs from PyPI alone and renders
local files (with their relative images) without a server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="HTML file to render")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--width", type=int, default=1200, help="viewport width in pixels (default 1200)")
    parser.add_argument("--height", type=int, default=1400, help="viewport height in pixels (default 1400)")
    args = parser.parse_args()

    from PySide6.QtCore import QTimer, QUrl
    from PySide6.QtWebEngineWidgets import QWebEngineView
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    view = QWebEngineView()
    view.resize(args.width, args.height)

    def grab() -> None:
        view.grab().save(str(args.out))
        app.quit()

    # Wait a moment after loading so that the page's images are decoded and laid out.
    view.loadFinished.connect(lambda ok: QTimer.singleShot(1500, grab))
    view.load(QUrl.fromLocalFile(str(args.page.resolve())))
    view.show()
    app.exec()
    return 0 if args.out.is_file() else 1


if __name__ == "__main__":
    raise SystemExit(main())
