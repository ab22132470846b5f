"""The archive commands of `reportgen`: list, verify, compare. cli.py adds them to the group.

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import global_flags, handle_errors
from ..errors import ReportgenError
from ..metrics import ARCHIVE_COLUMNS

# Columns of `reportgen list`: (header, metric key or field); the metric columns are the archive's one list.
LIST_COLUMNS = (("MODEL", "model"), ("VERSION", "version"), ("CREATED", "created_at"),
                *((label.upper(), key) for key, label in ARCHIVE_COLUMNS.items()))


def _table(rows: list[list[str]], headers: list[str], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def format_list(versions: list[dict]) -> str:
    """`reportgen list` as a text table (newest first, as list_versions returns them)."""
    from ..metrics import fmt

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


@click.command("list")
@click.option("--output", "-o", "root", type=click.Path(file_okay=False), default="output", show_default=True,
              help="Archive root to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@global_flags
@handle_errors
def list_cmd(obj, root: str, as_json: bool) -> None:
    """List every model version in the archive, newest first.

    \b
    Examples:
      reportgen list
      reportgen list --output reports/ --json
    """
    from ..archive.index import list_versions
    if not Path(root).is_dir():
        raise ReportgenError(f"{root}: no such archive folder")
    versions = list_versions(root)
    if as_json:
        click.echo(json.dumps(versions, indent=2))
    elif not versions:
        click.echo(f"no reports under {root}", err=True)
    else:
        click.echo(format_list(versions))

@click.command("verify")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@global_flags
@handle_errors
def verify_cmd(obj, folder: str) -> None:
    """Re-check every file of a version folder (or of a whole archive) against its manifest.json.

    Exits non-zero and names each changed, missing or unlisted file.

    \b
    Examples:
      reportgen verify output/mnist-cnn/7fdd69e07c85
      reportgen verify output/
    """
    from ..report.folder import sealed_units, verify
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

@click.command("compare")
@click.argument("old", type=click.Path(exists=True, file_okay=False))
@click.argument("new", type=click.Path(exists=True, file_okay=False))
@click.option("--output", "-o", "out", type=click.Path(file_okay=False), default=None,
              help="Folder to write (default: NEW/compare-<OLD version>/).")
@click.option("--force", is_flag=True, allow_from_autoenv=False, help="Overwrite an existing comparison folder.")
@click.option("--paper", type=click.Choice(["a4", "letter"]), default="a4", show_default=True, help="PDF paper size.")
@global_flags
@handle_errors
def compare_cmd(obj, old: str, new: str, out: str | None, force: bool, paper: str) -> None:
    """Compare two version folders: metric deltas, reliability, per-class changes, flagged samples.

    Writes compare.html, compare.pdf, compare.json and manifest.json and prints the folder.

    \b
    Examples:
      reportgen compare output/mnist-cnn/v1 output/mnist-cnn/v2
      reportgen compare OLD NEW --output review/ --paper letter
    """
    from ..archive.index import INDEX_FILE, write_index
    from ..archive.compare import write

    obj.progress(f"comparing {old} -> {new}")
    folder = write(old, new, out, force=force, paper=paper)
    root = Path(new).resolve().parent.parent
    if folder.resolve().parent == Path(new).resolve() and (root / INDEX_FILE).exists():
        write_index(root)  # the index links comparisons stored inside a version folder
    click.echo(str(folder))


COMMANDS = (list_cmd, verify_cmd, compare_cmd)
