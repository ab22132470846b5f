"""The model card: who owns the model, what it is for and not for, and its known limits.

Read from `--card FILE` (TOML: the fields at the top level or under [card]) or from
`[tool.reportgen.card]` in the nearest pyproject.toml. Every field the card leaves out is shown as
"not provided", so a reviewer sees the gap. `model_card_json` writes the card and the audit's
numbers with the Model Card Toolkit schema's field names (model_details, model_parameters,
quantitative_analysis, considerations), so existing tooling can read it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Mapping

from ..errors import ReportgenError

CARD_FILE = "model_card.json"
# The Model Card Toolkit schema version whose field names model_card.json follows.
SCHEMA_VERSION = "0.0.2"
# Card fields: key in the TOML file -> display name. Owners are a list of {name, contact} tables.
FIELDS = {
    "owners": "Owners and contact",
    "intended_use": "Intended use",
    "intended_users": "Intended users",
    "out_of_scope": "Out-of-scope uses",
    "limitations": "Known limitations",
    "ethical_considerations": "Ethical considerations",
    "tradeoffs": "Trade-offs",
    "license": "Licence",
    "references": "References",
}
NOT_PROVIDED = "not provided"
# The card's list of acceptance criteria (gates.acceptance expressions, as --accept takes them).
ACCEPTANCE = "acceptance"


def _fail(source: str, problem: str) -> ReportgenError:
    return ReportgenError(f"{source}: {problem}")


def _text_list(value: Any, key: str, source: str) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise _fail(source, f"card field {key!r} must be a string or a list of strings")


def _owners(value: Any, source: str) -> list[dict]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({"name": item.strip(), "contact": ""})
        elif isinstance(item, dict) and set(item) <= {"name", "contact"} and all(isinstance(v, str) for v in item.values()):
            out.append({"name": item.get("name", "").strip(), "contact": item.get("contact", "").strip()})
        else:
            raise _fail(source, "card field 'owners' must be a list of {name = ..., contact = ...} tables (or names)")
    return [o for o in out if o["name"] or o["contact"]]


def from_table(table: Mapping[str, Any] | None, source: str) -> dict:
    """A checked card from a TOML table: {"source", "fields": {key: [str, ...] | [owner, ...]}, "missing": [keys]}.

    Raises:
        ReportgenError: an unknown key or a value of the wrong type (one line naming `source`).
    """
    from . import gates

    table = dict(table or {})
    unknown = sorted(set(table) - set(FIELDS) - {ACCEPTANCE})
    if unknown:
        raise _fail(source, f"unknown card field(s) {', '.join(unknown)}; valid: {', '.join([*FIELDS, ACCEPTANCE])}")
    criteria = _text_list(table.pop(ACCEPTANCE, []), ACCEPTANCE, source)
    try:
        gates.parse_all(criteria, flag=f"{source} acceptance")
    except gates.GateError as e:
        raise _fail(source, str(e).removeprefix(f"{source} ")) from None
    fields: dict[str, list] = {}
    for key, value in table.items():
        fields[key] = _owners(value, source) if key == "owners" else _text_list(value, key, source)
    missing = [k for k in FIELDS if not fields.get(k)]
    return {"source": source, "fields": fields, "missing": missing, "acceptance": criteria}


def load(path: str | Path) -> dict:
    """A card from a TOML file: its top level, or its [card] table (or [tool.reportgen.card] in a pyproject.toml).

    Raises:
        ReportgenError: missing file, invalid TOML, or a bad field.
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(str(p), "no such card file") from None
    except tomllib.TOMLDecodeError as e:
        raise _fail(str(p), f"not valid TOML ({e})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(str(p), f"unreadable ({e.__class__.__name__})") from e
    table = data.get("tool", {}).get("reportgen", {}).get("card") if "tool" in data else data.get("card", data)
    if not isinstance(table, dict):
        raise _fail(str(p), "the card must be a TOML table")
    return from_table(table, str(p))


def context(card: dict | None) -> dict:
    """The report's card section: every field in order, with "not provided" for the ones left out."""
    card = card or {"source": None, "fields": {}, "missing": list(FIELDS), "acceptance": []}
    rows = []
    for key, name in FIELDS.items():
        value = card["fields"].get(key) or []
        if key == "owners":
            items = [" — ".join(x for x in (o["name"], o["contact"]) if x) for o in value]
        else:
            items = list(value)
        rows.append({"key": key, "name": name, "items": items, "provided": bool(items)})
    return {"source": card["source"], "rows": rows, "missing": [FIELDS[k] for k in card["missing"]],
            "acceptance": list(card.get("acceptance") or [])}


def model_card_json(card: dict | None, ctx: Mapping) -> dict:
    """model_card.json: the card and the audit's numbers under the Model Card Toolkit schema's field names.

    Args:
        card: a checked card (or None).
        ctx: the report context (plain data).
    """
    from .. import metrics as M
    card = card or {"fields": {}}
    f = card["fields"]
    m = ctx.get("metrics", {})
    model, data = ctx.get("model", {}), ctx.get("data", {})
    performance = []
    for key in ("n_samples",) + M.HEADLINE:  # how many samples, then the headline numbers with their intervals
        value = m.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        entry = {"type": M.names().get(key, key), "value": float(value), "slice": "all audited samples"}
        lo, hi = m.get(key + M.CI_LOW), m.get(key + M.CI_HIGH)
        if lo is not None and hi is not None:
            entry["confidence_interval"] = {"lower_bound": float(lo), "upper_bound": float(hi)}
        performance.append(entry)
    for row in ctx.get("per_class") or []:
        if row.get("accuracy") is None:
            continue
        entry = {"type": "Recall", "value": float(row["accuracy"]), "slice": f"true class {row['name']}"}
        if row.get("accuracy_ci"):
            entry["confidence_interval"] = {"lower_bound": row["accuracy_ci"][0], "upper_bound": row["accuracy_ci"][1]}
        performance.append(entry)
    described = lambda key: [{"description": text} for text in f.get(key, [])]  # noqa: E731
    licenses = [{"custom_text": text} for text in f.get("license", [])]
    dataset = ctx.get("dataset") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "model_details": {
            "name": str(model.get("name", "")),
            "overview": f"Audited by reportgen {ctx.get('provenance', {}).get('reportgen_version', '')} on {ctx.get('created_at', '')}",
            "owners": [{"name": o["name"], "contact": o["contact"]} for o in f.get("owners", [])],
            "version": {"name": str(model.get("version", "")), "date": str(ctx.get("created_at", ""))[:10]},
            "licenses": licenses,
            "references": [{"reference": text} for text in f.get("references", [])],
        },
        "model_parameters": {
            "model_architecture": str((model.get("metadata") or {}).get("architecture") or model.get("kind", "")),
            "data": [{"name": str(data.get("name", "")), "description": str(dataset.get("summary", data.get("role", "")))}],
            "input_format": str(dataset.get("input_format", "")),
            "output_format": f"{data.get('n_classes', '?')} class probabilities",
        },
        "quantitative_analysis": {"performance_metrics": performance},
        "considerations": {
            "users": described("intended_users"),
            "use_cases": described("intended_use"),
            "limitations": described("limitations"),
            "tradeoffs": described("tradeoffs"),
            "ethical_considerations": [{"name": text, "mitigation_strategy": ""} for text in f.get("ethical_considerations", [])],
            "out_of_scope_uses": described("out_of_scope"),
        },
    }
