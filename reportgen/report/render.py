"""Shared rendering: the Jinja environments over templates/, PDF output through WeasyPrint, safe CSV cells.

report.html, compare.html and the archive's index.html all render through here, so escaping,
number formatting and the PDF's fetch policy are decided once.
"""

from __future__ import annotations

import functools
import html as _html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
# Badge levels -> a symbol, so a verdict never relies on colour alone.
LEVEL_SYMBOL = {"good": "✓", "warn": "!", "bad": "✗", "info": "•"}
# Characters that make a spreadsheet read a cell as a formula when they start it (OWASP's list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Characters with a meaning in GitHub-flavoured Markdown inline text and tables.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def plain(x: Any) -> Any:
    """numpy values -> JSON-ready Python values (NaN and inf -> None), recursively."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [plain(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(x, Path):
        return str(x)
    return x


def show(value: Any) -> str:
    """A configuration value as text: None -> '—', lists joined, booleans yes/no."""
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def filename(value: Any) -> str:
    """A path (or list of paths) as its last component: the report names files, the sha256 beside it identifies them,
    and summary.json keeps the full paths (a reader of the PDF has no use for a temporary directory)."""
    if isinstance(value, (list, tuple)):
        return show([filename(v) for v in value])
    if not isinstance(value, str) or "/" not in value:
        return show(value)
    return value.rstrip("/").rsplit("/", 1)[-1] or value


def csv_cell(value: Any) -> Any:
    """A value safe in a CSV cell opened by a spreadsheet: text starting like a formula gets a leading '.

    Numbers pass unchanged (a negative number is data, not a formula).
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def md_escape(value: Any) -> str:
    """Text safe inside GitHub Markdown (also inside a table cell): no markup, no HTML, one line."""
    text = "" if value is None else str(value)
    text = _html.escape(text, quote=False)  # & < > become entities: no raw HTML gets through
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return " ".join(text.splitlines())


def templates_dir() -> Path:
    """The Jinja templates: installed inside the package, or the checkout's top-level templates/."""
    package = Path(__file__).resolve().parent.parent
    for d in (package / "templates", package.parent / "templates"):
        if (d / "report.html").is_file():
            return d
    raise FileNotFoundError(f"reportgen templates not found beside {package}")


def _common(env, extra_globals: dict | None) -> None:
    env.filters["fmt"] = metrics.fmt
    env.filters["show"] = show
    env.filters["filename"] = filename
    env.globals.update({"LEVEL_SYMBOL": LEVEL_SYMBOL, "fmt_ci": metrics.fmt_with_interval, "better": metrics.better,
                        "short_name": metrics.short_name,
                        **(extra_globals or {})})


def environment(extra_globals: dict | None = None):
    """The Jinja environment for HTML over the packaged templates (autoescaping on)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir()), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    _common(env, extra_globals)
    env.filters["tojson_value"] = lambda v: json.dumps(v)
    return env


def markdown_environment(extra_globals: dict | None = None):
    """The Jinja environment for Markdown: every {{ value }} passes through md_escape."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir()), autoescape=False, finalize=md_escape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    _common(env, extra_globals)
    return env


@functools.cache
def _plain_environment(markdown: bool):
    """One environment per process for the templates without extra globals: each template compiles once."""
    return markdown_environment() if markdown else environment()


def render(template: str, context: dict, *, paper: str = "a4", medium: str = "screen", env=None) -> str:
    """Render one HTML template (report.html, compare.html, index.html) with `ctx=context`.

    env: an `environment(...)` to render in (keep it: a new one compiles the templates again); default the plain one.
    """
    return (env or _plain_environment(False)).get_template(template).render(ctx=context, paper=paper, medium=medium)


def render_markdown(template: str, context: dict, *, env=None) -> str:
    """Render one Markdown template with `ctx=context`, every value escaped (env: a `markdown_environment(...)`)."""
    return (env or _plain_environment(True)).get_template(template).render(ctx=context)


def _data_only_fetcher(folder: Path):
    """A WeasyPrint URL fetcher serving data: URIs and files inside `folder`, nothing else."""
    from urllib.parse import unquote, urlparse

    from weasyprint.urls import URLFetcher

    root = folder.resolve()

    class _Fetcher(URLFetcher):
        def fetch(self, url, headers=None):
            parts = urlparse(url)
            scheme = parts.scheme.lower()
            if scheme == "file":
                if parts.netloc not in ("", "localhost"):
                    raise ValueError(f"reportgen refuses to fetch {url} (a file on another host)")
                p = Path(unquote(parts.path)).resolve()
                if root not in p.parents:
                    raise ValueError(f"reportgen refuses to read {p} (outside the report folder)")
            elif scheme != "data":
                raise ValueError(f"reportgen refuses to fetch {url} (only data: URIs and files in the report folder)")
            return super().fetch(url, headers)

    return _Fetcher(allowed_protocols={"data", "file"}, fail_on_errors=False)


def _weasyprint():
    """The weasyprint module, its and fontTools' warnings silenced (reportgen's HTML is its own)."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return weasyprint


def html_to_pdf(html: str, folder: Path, out: Path) -> Path:
    """Write `html` as a PDF at `out` with WeasyPrint, fetching only data: URIs and files in `folder`."""
    _weasyprint().HTML(string=html, base_url=str(folder.resolve()) + "/", url_fetcher=_data_only_fetcher(folder)).write_pdf(out)
    return out
