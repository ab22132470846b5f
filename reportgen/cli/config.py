"""Option defaults from a configuration file: `[tool.reportgen]` in the nearest pyproject.toml, or a reportgen.toml.

Keys are the command-line option names with '-' replaced by '_' (`mc_samples = 30`, `paper = "letter"`).
A key at the top of the table applies to every command that has that option; a sub-table named after
a command (`[tool.reportgen.audit]`) applies to that command only and wins over the top level.
Precedence, highest first: command line, REPORTGEN_* environment variables, this file, built-in defaults.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Mapping

from ..errors import ReportgenError

PYPROJECT = "pyproject.toml"
# The table of pyproject.toml that holds reportgen's settings.
TABLE = ("tool", "reportgen")
# Options that must be asked for on each command line: overwriting reports and running code stored in a model file.
COMMAND_LINE_ONLY = frozenset({"force", "trust_model"})
# Options a configuration file may not set at all (they choose the file, or print and exit).
NOT_CONFIGURABLE = frozenset({"config", "help", "version_option"})
# Keys whose values are paths: resolved against the configuration file's folder, not the working directory.
PATH_KEYS = frozenset({"data", "model", "predictions", "labels", "images", "class_names", "output", "card", "reviews"})
# Values of `data` that name a built-in source rather than a file.
BUILTIN_SOURCES = frozenset({"mnist"})
# The sub-table that holds the model card's fields (card.FIELDS), not option defaults.
CARD_TABLE = "card"
# Top-level keys that do not reach some commands, because there the option means something else
# (`train --output` is the folder for model files and `compare --output` one comparison, not the archive root).
TOP_LEVEL_SKIPS = frozenset({("train", "output"), ("compare", "output")})


def option_keys(group) -> dict[str, dict[str, str]]:
    """Configuration key -> {command name ('' = the group itself): Click parameter name}.

    Args:
        group: a click.Group; every Option of it and of its commands counts (not eager, value-less
            options such as --help and --version).
    """
    out: dict[str, dict[str, str]] = {}

    def add(cmd_name: str, command) -> None:
        for p in command.params:
            if getattr(p, "param_type_name", "") != "option" or not p.expose_value:
                continue
            longs = [o for o in p.opts if o.startswith("--")]
            key = (longs[0][2:] if longs else p.name).replace("-", "_")
            if key not in NOT_CONFIGURABLE:
                out.setdefault(key, {})[cmd_name] = p.name

    add("", group)
    for name, command in getattr(group, "commands", {}).items():
        add(name, command)
    return out


def locate(path: str | Path | None, start: str | Path) -> Path | None:
    """The configuration file to read: `path` if given, else the nearest pyproject.toml at or above `start`.

    Raises:
        ReportgenError: `path` was given and does not exist.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ReportgenError(f"{p}: no such configuration file")
        return p
    start = Path(start).resolve()
    for d in (start, *start.parents):
        if (d / PYPROJECT).is_file():
            return d / PYPROJECT
    return None


def _read_table(p: Path) -> dict:
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ReportgenError(f"{p}: not valid TOML ({e})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ReportgenError(f"{p}: unreadable ({e.__class__.__name__})") from e
    if p.name == PYPROJECT:
        for part in TABLE:
            data = data.get(part, {})
            if not isinstance(data, dict):
                raise ReportgenError(f"{p}: [{'.'.join(TABLE)}] must be a table")
    return data


def _resolve(key: str, value: Any, base: Path) -> Any:
    """Paths relative to the configuration file's folder; built-in sources ('mnist') unchanged."""
    if key not in PATH_KEYS:
        return value
    if isinstance(value, list):
        return [_resolve(key, v, base) for v in value]
    if isinstance(value, str) and not (key == "data" and value in BUILTIN_SOURCES):
        v = Path(value).expanduser()
        return str(v if v.is_absolute() else (base / v).resolve())
    return value


def _check_key(p: Path, key: str, keys: Mapping[str, dict], table: str, command: str | None = None) -> None:
    where = f"[{table}]" if table else "the top level"
    if key in COMMAND_LINE_ONLY:
        raise ReportgenError(f"{p}: {key!r} in {where} cannot be set in a configuration file; pass --{key.replace('_', '-')} on the command line")
    if key not in keys or (command is not None and command not in keys[key]):
        valid = sorted(k for k, cmds in keys.items() if (command is None or command in cmds) and k not in COMMAND_LINE_ONLY)
        what = f"an option of `reportgen {command}`" if command else "a reportgen option"
        raise ReportgenError(f"{p}: unknown key {key!r} in {where} (not {what}); valid keys: {', '.join(valid)}")


def load(path: str | Path | None, start: str | Path, *, group) -> dict:
    """Read and check the configuration: keys as in the file, path values made absolute.

    Args:
        path: an explicit reportgen.toml (top-level keys) or pyproject.toml ([tool.reportgen]); None: search.
        start: where the search for pyproject.toml starts (usually the working directory).
        group: the click.Group whose options are the valid keys (reportgen's CLI passes itself).
    Returns:
        {key: value, command: {key: value}}; {} when there is no file or no [tool.reportgen] table.
    Raises:
        ReportgenError: unreadable file, invalid TOML, or an unknown / command-line-only key (names the file and key).
    """
    p = locate(path, start)
    if p is None:
        return {}
    data = _read_table(p)
    keys = option_keys(group)
    commands = set(getattr(group, "commands", {}))
    table = ".".join(TABLE) if p.name == PYPROJECT else ""
    base = p.resolve().parent
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == CARD_TABLE and isinstance(value, dict):
            out[CARD_TABLE] = dict(value)  # the card's fields (a string here is the --card file instead)
        elif key in commands and isinstance(value, dict):
            sub = f"{table}.{key}" if table else key
            for k, v in value.items():
                _check_key(p, k, keys, sub, command=key)
                out.setdefault(key, {})[k] = _resolve(k, v, base)
        else:
            _check_key(p, key, keys, table)
            out[key] = _resolve(key, value, base)
    return out


def default_map(cfg: Mapping[str, Any], group) -> dict:
    """Click's default_map for `group` from a loaded configuration.

    Top-level keys reach every command with that option (except TOP_LEVEL_SKIPS); a command's
    sub-table wins over them. Options with multiple values accept one value or a list.
    """
    keys = option_keys(group)
    commands = getattr(group, "commands", {})
    params = {(cmd, p.name): p for cmd, c in [("", group), *commands.items()] for p in c.params}
    dm: dict[str, Any] = {}

    def put(cmd: str, key: str, value: Any) -> None:
        pname = keys[key][cmd]
        if getattr(params.get((cmd, pname)), "multiple", False) and not isinstance(value, (list, tuple)):
            value = [value]
        target = dm if cmd == "" else dm.setdefault(cmd, {})
        target[pname] = value

    for key, value in cfg.items():
        if (key == CARD_TABLE or key in commands) and isinstance(value, dict):
            continue
        for cmd in keys.get(key, {}):
            if (cmd, key) not in TOP_LEVEL_SKIPS:
                put(cmd, key, value)
    for cmd, table in cfg.items():
        if cmd in commands and isinstance(table, dict):
            for key, value in table.items():
                put(cmd, key, value)
    return dm


def known_keys(group) -> list[str]:
    """Every key a configuration file may set, sorted."""
    return sorted(k for k in option_keys(group) if k not in COMMAND_LINE_ONLY)

