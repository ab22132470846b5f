"""--fail-on gates: parsing (usage errors before any work) and evaluation (the expression is the failure condition)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import run_cli

from reportgen.report import gates as gates
from reportgen.errors import ReportgenError
from reportgen.metrics import names as metric_names


@pytest.mark.parametrize("expr, key, op, threshold", [
    ("accuracy<0.98", "accuracy", "<", 0.98),
    ("  ece > 0.03 ", "ece", ">", 0.03),
    ("acc_at_90<=.9", "acc_at_90", "<=", 0.9),
    ("n_flagged>=25", "n_flagged", ">=", 25.0),
    ("nll>3e-1", "nll", ">", 0.3),
    ("temperature<-1", "temperature", "<", -1.0),
])
def test_parse_valid(expr, key, op, threshold):
    g = gates.parse(expr)
    assert (g.key, g.op, g.threshold) == (key, op, threshold)
    assert g.expr == expr.strip()


@pytest.mark.parametrize("expr, says", [
    ("accuracy<<1", "expected <metric><op><number>"),
    ("accuracy=<1", "expected <metric><op><number>"),
    ("accuracy==1", "expected <metric><op><number>"),
    ("accuracy<", "expected <metric><op><number>"),
    ("<0.5", "expected <metric><op><number>"),
    ("accuracy<0.5 and ece>1", "expected <metric><op><number>"),
    ("accuracy<nan", "expected <metric><op><number>"),
    ("bogus<1", "unknown metric 'bogus'"),
    ("Accuracy<1", "unknown metric 'Accuracy'"),
])
def test_parse_rejects(expr, says):
    with pytest.raises(gates.GateError) as e:
        gates.parse(expr)
    assert says in str(e.value)
    assert repr(expr) in str(e.value)


def test_unknown_key_lists_every_valid_key_and_is_a_reportgen_error():
    with pytest.raises(ReportgenError) as e:
        gates.parse("bogus<1")
    for key in metric_names():
        assert key in str(e.value)


def test_known_keys_are_the_summary_metric_keys():
    assert set(gates.known_keys()) == set(metric_names())
    assert {"accuracy", "ece", "mean_epistemic", "n_flagged", "label_error_rate"} <= set(gates.known_keys())


def test_evaluate_reports_only_failed_gates_in_order():
    m = {"accuracy": 0.97, "ece": 0.02, "n_flagged": 30}
    gs = gates.parse_all(["accuracy<0.98", "ece>0.03", "n_flagged>=30"])
    failed = gates.evaluate(gs, m)
    assert len(failed) == 2
    assert "'accuracy<0.98'" in failed[0] and "0.97" in failed[0]
    assert "'n_flagged>=30'" in failed[1] and "30" in failed[1]
    assert gates.evaluate(gates.parse_all(["accuracy<0.9", "ece>0.05"]), m) == []


def test_strict_and_inclusive_operators_at_the_boundary():
    m = {"accuracy": 0.97}
    assert gates.evaluate([gates.parse("accuracy<0.97")], m) == []
    assert len(gates.evaluate([gates.parse("accuracy<=0.97")], m)) == 1
    assert gates.evaluate([gates.parse("accuracy>0.97")], m) == []
    assert len(gates.evaluate([gates.parse("accuracy>=0.97")], m)) == 1


@pytest.mark.parametrize("value", [None, float("nan")])
def test_unmeasured_metric_fails_with_a_clear_message(value):
    failed = gates.evaluate([gates.parse("mean_epistemic>0.5")], {"mean_epistemic": value})
    assert failed == ["gate 'mean_epistemic>0.5' failed: mean_epistemic was not measured in this run"]
    assert gates.evaluate([gates.parse("ece>0.5")], {}) == ["gate 'ece>0.5' failed: ece was not measured in this run"]


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@given(x=finite, t=finite)
def test_complementary_gates_fail_exactly_once(x, t):
    m = {"accuracy": x}
    for a, b in (("<", ">="), (">", "<=")):
        ga, gb = gates.Gate("accuracy", a, t, f"accuracy{a}{t}"), gates.Gate("accuracy", b, t, f"accuracy{b}{t}")
        assert len(gates.evaluate([ga, gb], m)) == 1


# --------------------------------------------------------------------------- exit codes through the CLI

@pytest.mark.parametrize("expr", ["bogus<1", "accuracy<<1"])
def test_bad_gate_is_a_usage_error_before_any_work(expr, tmp_path, mnist_npz):
    out = tmp_path / "out"
    r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--output", str(out), "--fail-on", expr])
    assert r.exit_code == 2, r.output
    assert expr in r.stderr
    assert not out.exists()


def test_failed_gate_exits_3_after_writing_the_report(tmp_path, mnist_npz, deterministic_audit):
    _, model = deterministic_audit
    out = tmp_path / "out"
    r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--model", str(model), "--name", "m", "--version", "g",
                 "--mc-samples", "1", "--output", str(out), "--fail-on", "accuracy>0.5", "--fail-on", "ece>1"])
    assert r.exit_code == 3, r.output
    assert "accuracy>0.5" in r.stderr
    assert "'ece>1' failed" not in r.stderr
    folder = out / "m" / "g"
    assert (folder / "report.html").is_file() and (folder / "summary.json").is_file()
    s = json.loads((folder / "summary.json").read_text())
    # summary.json records each gate's outcome, in the order given.
    assert [(g["expr"], g["failed"]) for g in s["gates"]] == [("accuracy>0.5", True), ("ece>1", False)]
    assert s["gates"][0]["message"] == f"gate 'accuracy>0.5' failed: accuracy = {s['metrics']['accuracy']:.6g}"


def test_passing_gates_exit_0(tmp_path, mnist_npz, deterministic_audit):
    _, model = deterministic_audit
    r = run_cli(["--quiet", "audit", "--data", str(mnist_npz), "--model", str(model), "--name", "m", "--version", "p",
                 "--mc-samples", "1", "--output", str(tmp_path), "--fail-on", "accuracy<0.5"])
    assert r.exit_code == 0, r.output
    assert Path(r.stdout.strip().splitlines()[-1]).is_dir()


def test_gates_on_the_pessimistic_bound_of_an_interval(tmp_path, mnist_npz, deterministic_audit):
    """accuracy_ci_low is a gate key: a gate between the lower bound and the point value tells them apart."""
    _, model = deterministic_audit
    base = ["--quiet", "audit", "--data", str(mnist_npz), "--model", str(model), "--name", "m", "--mc-samples", "1",
            "--output", str(tmp_path)]
    r = run_cli(base + ["--version", "a"])
    m = json.loads((Path(r.stdout.strip()) / "summary.json").read_text())["metrics"]
    assert m["accuracy_ci_low"] < m["accuracy"] < m["accuracy_ci_high"]
    between = round((m["accuracy_ci_low"] + m["accuracy"]) / 2, 4)
    r = run_cli(base + ["--version", "b", "--fail-on", f"accuracy_ci_low<{between}", "--fail-on", f"accuracy<{between}"])
    assert r.exit_code == 3
    assert f"'accuracy_ci_low<{between}' failed" in r.stderr and f"'accuracy<{between}' failed" not in r.stderr


# --------------------------------------------------------------------------- acceptance criteria (--accept, the card's)


def test_acceptance_is_judged_on_the_interval():
    from reportgen.report.gates import acceptance

    m = {"accuracy": 0.95, "accuracy_ci_low": 0.93, "accuracy_ci_high": 0.97, "ece": 0.02, "n_flagged": None}
    got = {a["expr"]: a["state"] for a in acceptance(["accuracy>=0.9", "accuracy>=0.96", "accuracy>=0.99", "ece<=0.03", "n_flagged<3"], m)}
    assert got == {"accuracy>=0.9": "met", "accuracy>=0.96": "not shown", "accuracy>=0.99": "not met", "ece<=0.03": "met",
                   "n_flagged<3": "not met"}
    (ece,) = acceptance(["ece<=0.03"], m)
    assert "judged on the value alone: this metric has no interval" in ece["text"]


def test_bad_acceptance_criteria_are_usage_errors_before_any_work(tmp_path):
    r = run_cli(["audit", "--accept", "accuracy=>0.9", "--output", str(tmp_path / "out")])
    assert r.exit_code == 2 and "expected <metric><op><number>" in r.output and "accept when accuracy is at least 0.98" in r.output
    card = tmp_path / "card.toml"
    card.write_text('intended_use = "x"\nacceptance = ["recall>0.9"]\n')
    r = run_cli(["audit", "--card", str(card), "--output", str(tmp_path / "out")])
    assert r.exit_code != 0 and "card.toml" in r.output and "unknown metric 'recall'" in r.output
    assert not (tmp_path / "out").exists()


def test_acceptance_from_the_options_and_the_card_on_the_first_page_and_a_missing_card_blocks(tmp_path, mnist_npz, deterministic_audit):
    """The first page shows each criterion's result; a model card left out is named as a blocking gap; an unmet criterion
    blocks too."""
    import subprocess

    _, model = deterministic_audit
    card = tmp_path / "card.toml"
    card.write_text('intended_use = "Sorting digits"\nacceptance = ["accuracy>=0.999"]\n')
    base = ["--quiet", "audit", "--data", str(mnist_npz), "--model", str(model), "--name", "m", "--mc-samples", "1",
            "--output", str(tmp_path / "out")]
    r = run_cli(base + ["--version", "a", "--accept", "accuracy>=0.5", "--card", str(card)])
    assert r.exit_code == 0, r.output
    folder = Path(r.stdout.strip())
    s = json.loads((folder / "summary.json").read_text())
    assert [(a["expr"], a["state"]) for a in s["acceptance"]] == [("accuracy>=0.5", "met"), ("accuracy>=0.999", "not met")]
    blocking = [c for c in s["conclusions"] if c.get("blocking")]
    assert [c["topic"] for c in blocking] == ["acceptance", "card"]
    assert "accuracy>=0.999 is not met" in blocking[0]["evidence"] and "leaves out Owners and contact" in blocking[1]["evidence"]
    first = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(folder / "report.pdf"), "-"], capture_output=True, text=True).stdout
    assert "accuracy>=0.5" in first and "met" in first and "accuracy>=0.999" in first and "not met" in first
    r = run_cli(base + ["--version", "b"])
    s = json.loads((Path(r.stdout.strip()) / "summary.json").read_text())
    assert s["acceptance"] == [] and [c["topic"] for c in s["conclusions"] if c.get("blocking")] == ["card"]
    assert "no model card was given" in s["conclusions"][0]["evidence"]
