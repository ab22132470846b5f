"""Pictures of reports for the README (`make screenshots`): PDF pages through pdftoppm, the HTML through headless Chromium.

Tooling, not a stage of the audit: the tests use it to render what a reviewer sees.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..report.folder import HTML_FILE, PDF_FILE
from .index import list_versions
from ..errors import ReportgenError

# Headless Chromium flags: no network side-channels, no first-run work, a throwaway profile.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
# Seconds before an external renderer (pdftoppm, chromium) is given up on.
RENDER_TIMEOUT = 120


def pdf_to_pngs(pdf: Path, prefix: Path, *, dpi: int = 60, first: int | None = None, last: int | None = None) -> list[Path]:
    """Render PDF pages to `<prefix>-<n>.png` with pdftoppm (poppler-utils); return them in page order.

    Raises:
        ReportgenError: pdftoppm is not installed or fails.
    """
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise ReportgenError("pdftoppm not found: install poppler-utils (apt-get install poppler-utils)")
    pages = [*(["-f", str(first)] if first else []), *(["-l", str(last)] if last else [])]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([exe, "-r", str(dpi), "-png", *pages, str(pdf), str(prefix)], capture_output=True, text=True,
                       timeout=RENDER_TIMEOUT)
    if r.returncode != 0:
        raise ReportgenError(f"{pdf}: pdftoppm failed ({(r.stderr.strip().splitlines() or ['no message'])[0]})")
    found = prefix.parent.glob(f"{prefix.name}-*.png")
    return sorted(found, key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def chromium() -> str | None:
    """The headless-capable Chromium executable, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def html_screenshot(html: Path, png: Path, *, width: int = 1280, height: int = 900) -> Path:
    """Screenshot `html` (its first `height` pixels) with headless Chromium and a throwaway profile.

    Raises:
        ReportgenError: Chromium is not installed or writes no screenshot.
    """
    exe = chromium()
    if exe is None:
        raise ReportgenError("chromium not found: install it (apt-get install chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reportgen-chromium-") as profile:
        r = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                            f"--screenshot={png.resolve()}", html.resolve().as_uri()],
                           capture_output=True, text=True, timeout=RENDER_TIMEOUT)
    if r.returncode != 0 or not png.exists():
        raise ReportgenError(f"{html}: chromium wrote no screenshot ({(r.stderr.strip().splitlines() or ['no message'])[-1]})")
    return png


def screenshots(root: str | Path, docs: str | Path, *, pages: int = 2, dpi: int = 80) -> list[Path]:
    """Pictures of the newest report under `root` for the README: PDF pages 1..pages and the HTML.

    Writes `docs/report-page<n>.png` and `docs/report-html.png`.

    Raises:
        ReportgenError: no report under root, or a renderer is missing.
    """
    versions = [v for v in list_versions(root) if (Path(root) / v["path"] / PDF_FILE).exists()]
    if not versions:
        raise ReportgenError(f"{root}: no report found; run `make run` first")
    folder = Path(root) / versions[0]["path"]
    docs = Path(docs)
    docs.mkdir(parents=True, exist_ok=True)
    out = []
    with tempfile.TemporaryDirectory(prefix="reportgen-pages-") as tmp:
        for n, png in enumerate(pdf_to_pngs(folder / PDF_FILE, Path(tmp) / "page", dpi=dpi, last=pages), start=1):
            out.append(Path(shutil.copyfile(png, docs / f"report-page{n}.png")))
    out.append(html_screenshot(folder / HTML_FILE, docs / "report-html.png"))
    return out
