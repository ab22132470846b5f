"""What every `reportgen` command shares: global flags, one-line errors, gates, configuration defaults.

Nothing here imports TensorFlow, and nothing here imports the commands (cli.py and cli_archive.py
import this module, never the other way round).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from ..errors import ReportgenError

# Exit code of a run whose report was written but a --fail-on gate failed.
GATE_EXIT = 3
# ctx.meta key under which the configuration file in use is kept for the provenance.
CONFIG_FILE_META = "reportgen.config_file"
# ctx.meta key under which the configuration's [tool.reportgen.card] table is kept.
CARD_META = "reportgen.card"


class Ctx:
    """Global flags shared by every subcommand (set before or after the command name)."""

    def __init__(self, quiet: bool = False, debug: bool = False):
        self.quiet, self.debug = quiet, debug

    def progress(self, msg: str) -> None:
        if not self.quiet or msg.startswith("warning:"):
            click.echo(msg, err=True)


def _set_flag(name: str):
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            setattr(ctx.ensure_object(Ctx), name, True)
    return callback


def global_flags(fn):
    """--quiet and --debug on a command too, so `reportgen audit --quiet` works like `reportgen --quiet audit`."""
    fn = click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_flag("debug"),
                      help="Show the full traceback on errors.")(fn)
    return click.option("--quiet", "-q", is_flag=True, expose_value=False, is_eager=True, callback=_set_flag("quiet"),
                        help="No progress messages (warnings and errors still shown).")(fn)


def handle_errors(fn):
    """Run a command; a ReportgenError (or Ctrl-C) becomes one line on stderr and a non-zero exit."""

    @functools.wraps(fn)
    @click.pass_obj
    def wrapper(obj: Ctx, *args, **kwargs):
        try:
            return fn(obj, *args, **kwargs)
        except ReportgenError as e:
            if obj.debug:
                raise
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was written", err=True)
            sys.exit(130)
        except click.ClickException:
            raise
        except Exception as e:  # a bug, not bad input: still one line unless --debug
            if obj.debug:
                raise
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise click.ClickException(f"internal error: {e.__class__.__name__}: {first} (rerun with --debug for the traceback)") from None

    return wrapper


class GateParam(click.ParamType):
    """A --fail-on (or --accept) expression, checked while the command line is parsed (a bad one exits 2 before any work)."""

    name = "EXPR"

    def __init__(self, flag: str = "--fail-on"):
        self.flag = flag

    def convert(self, value, param, ctx):
        from ..report.gates import GateError, parse

        try:
            return parse(value, flag=self.flag).expr
        except GateError as e:
            self.fail(str(e).removeprefix(f"{self.flag} "), param, ctx)


GATE = GateParam()
ACCEPT = GateParam("--accept")


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    from . import config
    try:
        located = config.locate(value, Path.cwd())
        cfg = config.load(value, Path.cwd(), group=ctx.command)
    except ReportgenError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    ctx.meta[CONFIG_FILE_META] = str(located) if cfg or value else None
    ctx.meta[CARD_META] = cfg.pop(config.CARD_TABLE, None)
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


def card_table(ctx: click.Context | None = None) -> dict | None:
    """The configuration's model card table ([tool.reportgen.card]), if any."""
    ctx = ctx or click.get_current_context()
    return ctx.find_root().meta.get(CARD_META)


def option_sources(ctx: click.Context | None = None) -> dict[str, str]:
    """Where each option of the current command got its value: commandline, environment, default_map, default."""
    ctx = ctx or click.get_current_context()
    out = {}
    for p in ctx.command.params:
        if not p.expose_value:
            continue
        src = ctx.get_parameter_source(p.name)
        if src is not None:
            out[p.name] = src.name.lower()
    return out


def enforce_gates(folder: str | Path, exprs) -> None:
    """After the report is written: print each failed --fail-on gate on stderr and exit with GATE_EXIT.

    The metrics are read back from the folder's summary.json, the numbers a reviewer sees.
    """
    from ..report.folder import read_summary
    from ..report.gates import evaluate, parse_all

    if not exprs:
        return
    failed = evaluate(parse_all(exprs), read_summary(folder)["metrics"])
    for msg in failed:
        click.echo(f"Error: {msg}", err=True)
    if failed:
        raise SystemExit(GATE_EXIT)
