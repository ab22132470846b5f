"""Archive commands of `reportgen` (list, verify, compare) and the CLI pieces for gates and configuration.

`register(group)` adds the commands; cli.py calls it. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

# Columns of `reportgen list`: (header, metric key or field).
LIST_COLUMNS = (("MODEL", "model"), ("VERSION", "version"), ("CREATED", "created_at"), ("ACCURACY", "accuracy"),
                ("ECE", "ece"), ("EPISTEMIC", "mean_epistemic"), ("FLAGGED", "n_flagged"))
# Exit code of a run whose report was written but a --fail-on gate failed.
GATE_EXIT = 3
# ctx.meta key under which the configuration file in use is kept for the provenance.
CONFIG_FILE_META = "reportgen.config_file"


class GateParam(click.ParamType):
    """A --fail-on expression, checked while the command line is parsed (a bad one exits 2 before any work)."""

    name = "EXPR"

    def convert(self, value, param, ctx):
        from .gates import GateError, parse

        try:
            return parse(value).expr
        except GateError as e:
            self.fail(str(e).removeprefix("--fail-on "), param, ctx)


GATE = GateParam()


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    from . import config
    from .errors import ReportgenError

    try:
        located = config.locate(value, Path.cwd())
        cfg = config.load(value, Path.cwd(), group=ctx.command)
    except ReportgenError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    ctx.meta[CONFIG_FILE_META] = str(located) if cfg or value else None
    if cfg:
        ctx.default_map = {**config.default_map(cfg, ctx.command), **(ctx.default_map or {})}


def config_option(fn):
    """Decorator for the group: `--config FILE`, else the nearest pyproject.toml's [tool.reportgen], as option defaults."""
    return click.option(
        "--config", type=click.Path(dir_okay=False), default=None, is_eager=True, expose_value=False, callback=_load_config,
        help="A reportgen.toml with option defaults (default: [tool.reportgen] of the nearest pyproject.toml).",
    )(fn)


def config_file(ctx: click.Context | None = None) -> str | None:
    """The configuration file whose values are in effect (None: none)."""
    ctx = ctx or click.get_current_context()
    return ctx.find_root().meta.get(CONFIG_FILE_META)


def option_sources(ctx: click.Context | None = None) -> dict[str, str]:
    """Where each option of the current command got its value: commandline, environment, default_map, default."""
    ctx = ctx or click.get_current_context()
    out = {}
    for p in ctx.command.params:
        src = ctx.get_parameter_source(p.name)
        if src is not None:
            out[p.name] = src.name.lower()
    return out


def enforce_gates(folder: str | Path, exprs) -> None:
    """After the report is written: print each failed --fail-on gate on stderr and exit with GATE_EXIT.

    The metrics are read back from the folder's summary.json, the numbers a reviewer sees.
    """
    from .gates import evaluate, parse_all
    from .report import SUMMARY_FILE

    if not exprs:
        return
    metrics = json.loads((Path(folder) / SUMMARY_FILE).read_text(encoding="utf-8"))["metrics"]
    failed = evaluate(parse_all(exprs), metrics)
    for msg in failed:
        click.echo(f"Error: {msg}", err=True)
    if failed:
        raise SystemExit(GATE_EXIT)


def _table(rows: list[list[str]], headers: list[str], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def format_list(versions: list[dict]) -> str:
    """`reportgen list` as a text table (newest first, as list_versions returns them)."""
    from .report import fmt

    rows = []
    for v in versions:
        row = []
        for _, key in LIST_COLUMNS:
            if key in ("model", "version"):
                row.append(v[key])
            elif key == "created_at":
                row.append((v["created_at"] or "unknown").replace("T", " ").replace("+00:00", "Z"))
            elif v["error"]:
                row.append("?")
            else:
                row.append(fmt(v["metrics"].get(key), key))
        rows.append(row)
    return _table(rows, [h for h, _ in LIST_COLUMNS], right=set(range(3, len(LIST_COLUMNS))))


def register(group: click.Group) -> None:
    """Add `list`, `verify` and `compare` to `group` (the `reportgen` CLI)."""
    from .cli import handle_errors

    @group.command("list")
    @click.option("--output", "-o", "root", type=click.Path(file_okay=False), default="output", show_default=True,
                  help="Archive root to list.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    @handle_errors
    def list_cmd(obj, root: str, as_json: bool) -> None:
        """List every model version in the archive, newest first.

        \b
        Examples:
          reportgen list
          reportgen list --output reports/ --json
        """
        from .archive import list_versions
        from .errors import ReportgenError

        if not Path(root).is_dir():
            raise ReportgenError(f"{root}: no such archive folder")
        versions = list_versions(root)
        if as_json:
            click.echo(json.dumps(versions, indent=2))
        elif not versions:
            click.echo(f"no reports under {root}", err=True)
        else:
            click.echo(format_list(versions))

    @group.command("verify")
    @click.argument("folder", type=click.Path(exists=True, file_okay=False))
    @handle_errors
    def verify_cmd(obj, folder: str) -> None:
        """Re-check every file of a version folder (or of a whole archive) against its manifest.json.

        Exits non-zero and names each changed, missing or unlisted file.

        \b
        Examples:
          reportgen verify output/mnist-cnn/7fdd69e07c85
          reportgen verify output/
        """
        from .archive import sealed_units, verify
        from .errors import ReportgenError

        units = sealed_units(folder)
        if not units:
            raise ReportgenError(f"{folder}: no manifest.json here or below (not a reportgen version folder?)")
        problems = []
        for unit in units:
            found = verify(unit)
            problems.extend(found)
            if not found:
                click.echo(f"ok: {unit}")
        if problems:
            more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
            raise ReportgenError(f"verification failed: {problems[0]}{more}")

    @group.command("compare")
    @click.argument("old", type=click.Path(exists=True, file_okay=False))
    @click.argument("new", type=click.Path(exists=True, file_okay=False))
    @click.option("--output", "-o", "out", type=click.Path(file_okay=False), default=None,
                  help="Folder to write (default: NEW/compare-<OLD version>/).")
    @click.option("--force", is_flag=True, allow_from_autoenv=False, help="Overwrite an existing comparison folder.")
    @click.option("--paper", type=click.Choice(["a4", "letter"]), default="a4", show_default=True, help="PDF paper size.")
    @handle_errors
    def compare_cmd(obj, old: str, new: str, out: str | None, force: bool, paper: str) -> None:
        """Compare two version folders: metric deltas, reliability, per-class changes, flagged samples.

        Writes compare.html, compare.pdf, compare.json and manifest.json and prints the folder.

        \b
        Examples:
          reportgen compare output/mnist-cnn/v1 output/mnist-cnn/v2
          reportgen compare OLD NEW --output review/ --paper letter
        """
        from .archive import INDEX_FILE, write_index
        from .compare import write

        obj.progress(f"comparing {old} -> {new}")
        folder = write(old, new, out, force=force, paper=paper)
        root = Path(new).resolve().parent.parent
        if folder.resolve().parent == Path(new).resolve() and (root / INDEX_FILE).exists():
            write_index(root)  # the index links comparisons stored inside a version folder
        click.echo(str(folder))
