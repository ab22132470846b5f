"""CI gates: `--fail-on "accuracy<0.98"` expressions that describe when a run must fail.

An expression names the FAILURE condition: `accuracy<0.98` fails the run when accuracy is below
0.98, `ece>0.03` when the ECE is above 0.03. Parsing happens before any work (a malformed
expression or an unknown metric key is a usage error); evaluation happens after the report is
written, so a failed gate still leaves the report for the reviewer.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from .. import metrics
from ..errors import ReportgenError

# Comparison operators a gate may use, by their spelling.
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt,
}
# key, operator, number; the operator alternatives are ordered so "<=" is not read as "<" then "=".
_EXPR = re.compile(
    r"^\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


class GateError(ReportgenError):
    """A --fail-on expression is malformed or names an unknown metric (a usage error: exit 2)."""


@dataclass(frozen=True)
class Gate:
    """One parsed gate: the run fails when `metrics[key] <op> threshold` holds."""

    key: str
    op: str
    threshold: float
    expr: str

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.threshold:g}"


def known_keys() -> dict[str, str]:
    """Metric keys a gate may name, with their display names: every summary.json metric and its interval bounds."""
    return metrics.names()


def parse(expr: str, *, keys: Iterable[str] | None = None) -> Gate:
    """Parse one gate expression such as "accuracy<0.98" or "ece > 0.03".

    Args:
        expr: `<metric key><op><number>` with op one of < <= > >=.
        keys: the valid metric keys (default: known_keys()).
    Returns:
        The Gate.
    Raises:
        GateError: not of that form, a non-finite number, or an unknown key (the message lists the valid keys).
    """
    if not isinstance(expr, str):
        raise GateError(f"--fail-on {expr!r}: expected a string like 'accuracy<0.98'")
    m = _EXPR.match(expr)
    if m is None:
        raise GateError(
            f"--fail-on {expr!r}: expected <metric><op><number> with op one of {' '.join(sorted(OPERATORS, key=len))}, "
            "e.g. 'accuracy<0.98' (fail when accuracy is below 0.98)"
        )
    valid = set(known_keys() if keys is None else keys)
    key = m["key"]
    if key not in valid:
        raise GateError(f"--fail-on {expr!r}: unknown metric {key!r}; valid keys: {', '.join(sorted(valid))}")
    value = float(m["value"])
    if not math.isfinite(value):
        raise GateError(f"--fail-on {expr!r}: the threshold must be a finite number")
    return Gate(key=key, op=m["op"], threshold=value, expr=expr.strip())


def parse_all(exprs: Iterable[str], *, keys: Iterable[str] | None = None) -> list[Gate]:
    """Parse several expressions; the first bad one raises GateError."""
    valid = list(known_keys() if keys is None else keys)
    return [parse(e, keys=valid) for e in exprs]


def check(gate: Gate, values: Mapping[str, object]) -> str | None:
    """The failure message of `gate` on `metrics`, or None when it passes.

    A metric that is missing, None (not measured) or NaN fails: a CI gate must not pass silently
    on a number nobody measured.
    """
    value = values.get(gate.key)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(float(value)):
        return f"gate {gate.expr!r} failed: {gate.key} was not measured in this run"
    if OPERATORS[gate.op](float(value), gate.threshold):
        return f"gate {gate.expr!r} failed: {gate.key} = {float(value):.6g}"
    return None


def evaluate(gates: Iterable[Gate], values: Mapping[str, object]) -> list[str]:
    """One message per FAILED gate, in the order given (empty list: every gate passed).

    Args:
        gates: parsed gates.
        values: summary.json's "metrics" dict (plain numbers or None).
    """
    return [msg for g in gates if (msg := check(g, values)) is not None]


def results(exprs: Iterable[str], values: Mapping[str, object]) -> list[dict]:
    """[{"expr", "failed", "message"}] for --fail-on expressions on these metrics (recorded in the report)."""
    out = []
    for g in parse_all(exprs):
        msg = check(g, values)
        out.append({"expr": g.expr, "failed": msg is not None, "message": msg or f"gate {g.expr!r} passed"})
    return out
