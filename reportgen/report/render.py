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
import signal
from pathlib import Path
from typing import Any, Callable

from .. import metrics
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
    package = Path(__file__).resolve().parent.parent
    for d in (package / "templates", package.parent / "templates"):
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
    forked child, and a child collects nothing on its own either: children are short-lived, and
    collection passes over WeasyPrint's and matplotlib's many objects cost a PDF about a sixth of its
    time. The child's stderr goes to /dev/null: a child that fails only makes its parent do the work
    itself, and the parent reports any error.
    """
    gc.freeze()
    gc.disable()
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)


def _fork(body: Callable[[], object]) -> int | None:
    """Fork a child that settles (settle_child), runs body() and exits, 0 if it returned and 1 if it raised, without
    running the parent's exit handlers. Returns the child's pid in the parent; None without fork or when it fails."""
    try:
        pid = os.fork() if hasattr(os, "fork") else None
    except OSError:
        return None
    if pid == 0:
        settle_child()
        code = 1
        try:
            body()
            code = 0
        finally:
            os._exit(code)
    return pid


def in_child(work: Callable[[], object]) -> Callable[[], bool]:
    """Run `work()` in a forked child while this process goes on; returns wait() -> True if the child succeeded.

    wait() reaps the child (call it exactly once, also on error paths). Without fork, or when the
    fork fails, nothing runs and wait() returns False, so the caller does the work itself.
    """
    pid = _fork(work)
    if pid is None:
        return lambda: False
    return lambda: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


class WorkerFailed(Exception):
    """A Worker job did not come back (it raised, or the worker is gone): the caller does the work itself."""


class Worker:
    """A helper process forked early, which warms the rendering libraries on the idle core and then runs jobs.

    The audit starts one before it imports TensorFlow: while the parent imports TensorFlow (about
    4 s on one core), the worker imports matplotlib and WeasyPrint on the other and draws one small
    figure and PDF, so the figures and the PDF later start warm. It also never holds TensorFlow, so its
    own forked children (figures.parallel_encoding) start from a process without it.

    A job is a module-level function (or functools.partial of one) with picklable arguments. Any
    failure, a job that raises or a worker that died, raises WorkerFailed in the parent, whose
    caller then does the work itself; the worker prints nothing (settle_child). One job at a time.
    Like every forked child it never collects garbage: it lives for one audit's two jobs (the figures
    and the PDF), and peaked at about 200 MB on the 10,000-image MNIST report.
    """

    def __init__(self, conn, pid: int):
        self._conn, self._pid, self._busy = conn, pid, False

    @classmethod
    def start(cls, warm: Callable[[], object]) -> "Worker | None":
        """Fork a worker that runs `warm()` (errors ignored) and then serves jobs; None without fork."""
        import multiprocessing

        if not hasattr(os, "fork"):
            return None
        ours, theirs = multiprocessing.Pipe()

        def body():
            ours.close()
            try:
                warm()
            except Exception:  # noqa: BLE001 - a cold worker still works
                pass
            _serve(theirs)

        pid = _fork(body)
        theirs.close()
        if pid is None:
            ours.close()
            return None
        return cls(ours, pid)

    def call(self, fn: Callable, *args, **kwargs):
        """fn(*args, **kwargs) in the worker; its result, or WorkerFailed."""
        return self.submit(fn, *args, **kwargs)()

    def submit(self, fn: Callable, *args, **kwargs) -> Callable[[], object]:
        """Start fn(*args, **kwargs) in the worker and go on; returns result() (call it once), which raises WorkerFailed."""
        if self._conn is None or self._busy:
            raise WorkerFailed("the worker is not available")
        try:
            self._conn.send((fn, args, kwargs))
        except Exception as e:  # noqa: BLE001 - unpicklable job, broken pipe: do it in the caller
            self.close()
            raise WorkerFailed(f"cannot send the job ({type(e).__name__}: {e})") from e
        self._busy = True

        def result():
            try:
                ok, value = self._conn.recv()
            except (EOFError, OSError) as e:
                self.close()
                raise WorkerFailed("the worker exited") from e
            except Exception as e:  # noqa: BLE001 - a result this process cannot unpickle
                self.close()
                raise WorkerFailed(f"cannot read the result ({type(e).__name__}: {e})") from e
            except BaseException:  # Ctrl-C while waiting: stop the job now (it may be writing into a folder about to go)
                self.close()
                raise
            self._busy = False
            if not ok:
                raise WorkerFailed(value)
            return value

        return result

    def spawn(self, work: Callable[[], object]) -> Callable[[], bool]:
        """Like in_child: run `work()` in the worker (in a forked child when the worker cannot take it); wait() -> True
        if it succeeded."""
        try:
            result = self.submit(work)
        except WorkerFailed:
            return in_child(work)

        def wait() -> bool:
            try:
                result()
                return True
            except WorkerFailed:
                return False

        return wait

    def close(self) -> None:
        """Stop the worker and reap it; safe to call twice.

        It is killed, not asked to finish: it owns no file outside a job, a finished job has answered, and an
        unfinished one (an error or Ctrl-C in the caller) or a warm-up still running must not delay the caller.
        """
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._busy = False
        try:
            os.kill(self._pid, signal.SIGKILL)
        except OSError:
            pass
        conn.close()
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(conn) -> None:
    """The worker's loop: run each (fn, args, kwargs) received and send back (True, result) or (False, error); None or EOF ends it."""
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, args, kwargs = job
        try:
            reply = (True, fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - reported to the parent, which redoes the work
            reply = (False, f"{type(e).__name__}: {e}")
        try:
            conn.send(reply)
        except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
            try:
                conn.send((False, f"cannot send the result ({type(e).__name__}: {e})"))
            except Exception:  # noqa: BLE001 - the parent is gone
                return


def _weasyprint():
    """The weasyprint module, its and fontTools' warnings silenced (reportgen's HTML is its own)."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return weasyprint


def warm_pdf() -> None:
    """Import WeasyPrint and lay out one line in the report's fonts (fontconfig and Pango start once per process)."""
    _weasyprint().HTML(string='<p style="font-family: \'DejaVu Sans\'">a <b>b</b> <code style="font-family: '
                           '\'DejaVu Sans Mono\'">c</code></p>').write_pdf()


def html_to_pdf(html: str, folder: Path, out: Path) -> Path:
    """Write `html` as a PDF at `out` with WeasyPrint, fetching only data: URIs and files in `folder`."""
    _weasyprint().HTML(string=html, base_url=str(folder.resolve()) + "/", url_fetcher=_data_only_fetcher(folder)).write_pdf(out)
    return out
