"""Shared rendering: the Jinja environments over templates/, PDF output through WeasyPrint, safe CSV cells.

report.html, compare.html and the archive's index.html all render through here, so escaping,
number formatting and the PDF's fetch policy are decided once.
"""

from __future__ import annotations

import gc
import html as _html
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from . import metrics

# Badge levels -> a symbol, so a verdict never relies on colour alone.
LEVEL_SYMBOL = {"good": "✓", "warn": "!", "bad": "✗", "info": "•"}
# Characters that make a spreadsheet read a cell as a formula when they start it (OWASP's list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Characters with a meaning in GitHub-flavoured Markdown inline text and tables.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def show(value: Any) -> str:
    """A configuration value as text: None -> '—', lists joined, booleans yes/no."""
    if value is None or (isinstance(value, (list, tuple)) and not value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


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
    here = Path(__file__).resolve().parent
    for d in (here / "templates", here.parent / "templates"):
        if (d / "report.html").is_file():
            return d
    raise FileNotFoundError(f"reportgen templates not found beside {here}")


def _common(env, extra_globals: dict | None) -> None:
    env.filters["fmt"] = metrics.fmt
    env.filters["show"] = show
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


def render(template: str, context: dict, *, paper: str = "a4", medium: str = "screen", extra_globals: dict | None = None) -> str:
    """Render one HTML template (report.html, compare.html, index.html) with `ctx=context`."""
    return environment(extra_globals).get_template(template).render(ctx=context, paper=paper, medium=medium)


def render_markdown(template: str, context: dict, *, extra_globals: dict | None = None) -> str:
    """Render one Markdown template with `ctx=context`, every value escaped."""
    return markdown_environment(extra_globals).get_template(template).render(ctx=context)


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


def settle_child() -> None:
    """First call in a forked child of reportgen.

    The parent's objects are never garbage-collected here, since a TensorFlow finaliser aborts in a
    forked child. The child's stderr goes to /dev/null: a child that fails only makes its parent do
    the work itself, and the parent reports any error.
    """
    gc.freeze()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


def in_child(work: Callable[[], object]) -> Callable[[], bool]:
    """Run `work()` in a forked child while this process goes on; returns wait() -> True if the child succeeded.

    wait() reaps the child (call it exactly once, also on error paths). Without fork, or when the
    fork fails, nothing runs and wait() returns False, so the caller does the work itself.
    """
    try:
        pid = os.fork() if hasattr(os, "fork") else None
    except OSError:
        pid = None
    if pid is None:
        return lambda: False
    if pid == 0:  # the child: the work, then out without running the parent's exit handlers
        settle_child()
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    return lambda: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def html_to_pdf(html: str, folder: Path, out: Path) -> Path:
    """Write `html` as a PDF at `out` with WeasyPrint, fetching only data: URIs and files in `folder`."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    weasyprint.HTML(string=html, base_url=str(folder.resolve()) + "/", url_fetcher=_data_only_fetcher(folder)).write_pdf(out)
    return out
