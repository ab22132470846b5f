"""CI gates and acceptance criteria: `<metric><op><number>` expressions on summary.json's metrics.

- `--fail-on EXPR` names a FAILURE condition: `accuracy<0.98` fails the run when accuracy is below 0.98. It is
  evaluated on the value given (a point value, or an interval bound such as `accuracy_ci_low`).
- `--accept EXPR` (or the model card's `acceptance` list) names a condition the model must MEET to be accepted:
  `accuracy>=0.98`. It is judged on the metric's 95 % interval: met when the whole interval satisfies it, not met when
  none of it does, and "not shown" when the interval straddles the threshold (the data cannot tell); a metric without
  an interval is judged on its value, and says so.
Parsing happens before any work (a malformed expression or an unknown metric key is a usage error); evaluation
happens after the report is computed, so a failed gate still leaves the report for the reviewer.
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


def parse(expr: str, *, keys: Iterable[str] | None = None, flag: str = "--fail-on") -> Gate:
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
        raise GateError(f"{flag} {expr!r}: expected a string like 'accuracy<0.98'")
    m = _EXPR.match(expr)
    if m is None:
        example = "'accuracy>=0.98' (accept when accuracy is at least 0.98)" if flag == "--accept" else \
            "'accuracy<0.98' (fail when accuracy is below 0.98)"
        raise GateError(f"{flag} {expr!r}: expected <metric><op><number> with op one of {' '.join(sorted(OPERATORS, key=len))}, "
                        f"e.g. {example}")
    valid = set(known_keys() if keys is None else keys)
    key = m["key"]
    if key not in valid:
        raise GateError(f"{flag} {expr!r}: unknown metric {key!r}; valid keys: {', '.join(sorted(valid))}")
    value = float(m["value"])
    if not math.isfinite(value):
        raise GateError(f"{flag} {expr!r}: the threshold must be a finite number")
    return Gate(key=key, op=m["op"], threshold=value, expr=expr.strip())


def parse_all(exprs: Iterable[str], *, keys: Iterable[str] | None = None, flag: str = "--fail-on") -> list[Gate]:
    """Parse several expressions; the first bad one raises GateError."""
    valid = list(known_keys() if keys is None else keys)
    return [parse(e, keys=valid, flag=flag) for e in exprs]


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


def acceptance(exprs: Iterable[str], values: Mapping[str, object]) -> list[dict]:
    """Acceptance criteria judged on intervals: [{"expr", "state" ("met" | "not met" | "not shown"), "text"}].

    A criterion on a metric with a 95 % interval is met when every value of the interval satisfies it, not met when
    none does, and not shown when the interval straddles the threshold; a metric without an interval (or an interval
    key itself) is judged on its value alone; a metric not measured is not met.
    """
    out = []
    for g in parse_all(exprs, flag="--accept"):
        holds = OPERATORS[g.op]
        value = values.get(g.key)
        lo, hi = values.get(g.key + metrics.CI_LOW), values.get(g.key + metrics.CI_HIGH)
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))  # noqa: E731
        shown = metrics.fmt_with_interval(values, g.key) if number(value) else "not measured"
        if not number(value):
            state, why = "not met", "not measured in this run"
        elif number(lo) and number(hi):
            ends = [holds(float(lo), g.threshold), holds(float(hi), g.threshold)]
            state = "met" if all(ends) else "not met" if not any(ends) else "not shown"
            why = {"met": "the whole 95 % interval meets it", "not met": "no value in the 95 % interval meets it",
                   "not shown": "the 95 % interval straddles the threshold: this sample cannot show it"}[state]
        else:
            state = "met" if holds(float(value), g.threshold) else "not met"
            why = "judged on the value alone: this metric has no interval"
        out.append({"expr": g.expr, "key": g.key, "state": state, "text": f"{g.key} = {shown}: {why}"})
    return out
