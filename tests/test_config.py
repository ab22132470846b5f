"""Configuration: [tool.reportgen] in the nearest pyproject.toml or an explicit reportgen.toml; CLI > env > file > default."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from reportgen.cli import config as config
from reportgen.cli.common import GATE, config_file, config_option, option_sources
from reportgen.errors import ReportgenError


@click.group(context_settings={"auto_envvar_prefix": "REPORTGEN"})
@config_option
def toy():
    """A stand-in for the reportgen group with the same kinds of options."""


@toy.command()
@click.option("--data", default=None)
@click.option("--output", "-o", default="output")
@click.option("--model", "models", multiple=True)
@click.option("--mc-samples", type=click.IntRange(1), default=30)
@click.option("--paper", type=click.Choice(["a4", "letter"]), default="a4")
@click.option("--force", is_flag=True)
@click.option("--fail-on", "fail_on", multiple=True, type=GATE)
def audit(data, output, models, mc_samples, paper, force, fail_on):
    sources = option_sources()
    click.echo(f"output={output} models={list(models)} mc_samples={mc_samples} paper={paper} fail_on={list(fail_on)}")
    click.echo(f"sources mc_samples={sources['mc_samples']} paper={sources['paper']} file={config_file()}")


@toy.command()
@click.option("--output", "-o", default="output/models")
@click.option("--epochs", type=int, default=3)
def train(output, epochs):
    click.echo(f"output={output} epochs={epochs}")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture()
def project(tmp_path) -> Path:
    write(tmp_path / "proj" / "pyproject.toml", """
[project]
name = "x"

[tool.reportgen]
mc_samples = 5
output = "reports"
model = "models/m.keras"

[tool.reportgen.audit]
paper = "letter"
""")
    (tmp_path / "proj" / "a" / "b").mkdir(parents=True)
    return tmp_path / "proj"


def test_nearest_pyproject_found_walking_up_and_paths_resolved_against_it(project):
    cfg = config.load(None, project / "a" / "b", group=toy)
    assert cfg == {"mc_samples": 5, "output": str(project / "reports"), "model": str(project / "models" / "m.keras"),
                   "audit": {"paper": "letter"}}
    assert config.locate(None, project / "a" / "b") == project / "pyproject.toml"


def test_nearest_pyproject_without_the_table_means_no_configuration(project):
    write(project / "a" / "pyproject.toml", "[project]\nname = 'inner'\n")
    assert config.load(None, project / "a" / "b", group=toy) == {}


def test_explicit_reportgen_toml_uses_top_level_keys(tmp_path):
    p = write(tmp_path / "cfg" / "reportgen.toml", 'paper = "letter"\noutput = "mnist"\ndata = "mnist"\n[train]\nepochs = 1\n')
    cfg = config.load(str(p), tmp_path, group=toy)
    # Paths are relative to the file's folder, whatever the working directory; data = "mnist" names the built-in source.
    assert cfg == {"paper": "letter", "output": str(tmp_path / "cfg" / "mnist"), "data": "mnist", "train": {"epochs": 1}}


@pytest.mark.parametrize("text, says", [
    ("[tool.reportgen]\nmc_sample = 5\n", "unknown key 'mc_sample'"),
    ("[tool.reportgen.train]\nmc_samples = 5\n", "unknown key 'mc_samples' in [tool.reportgen.train]"),
    ("[tool.reportgen]\nforce = true\n", "'force' in [tool.reportgen] cannot be set in a configuration file"),
    ("[tool.reportgen]\nmc_samples = \n", "not valid TOML"),
    ("[tool]\nreportgen = 3\n", "[tool.reportgen] must be a table"),
])
def test_bad_configuration_names_the_file_and_key(tmp_path, text, says):
    p = write(tmp_path / "pyproject.toml", text)
    with pytest.raises(ReportgenError) as e:
        config.load(None, tmp_path, group=toy)
    assert str(e.value).startswith(str(p))
    assert says in str(e.value)


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ReportgenError, match="no such configuration file"):
        config.load(str(tmp_path / "nope.toml"), tmp_path, group=toy)


def test_default_map_shapes_values_per_command(project):
    dm = config.default_map(config.load(None, project, group=toy), toy)
    # 'output' means the archive root for audit, but train's --output is the model folder: not touched.
    assert dm == {"audit": {"mc_samples": 5, "output": str(project / "reports"), "models": [str(project / "models" / "m.keras")],
                            "paper": "letter"}}


def test_precedence_command_line_then_environment_then_file_then_default(project, monkeypatch):
    monkeypatch.chdir(project / "a")
    r = CliRunner().invoke(toy, ["audit"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"output={project / 'reports'} models=['{project / 'models' / 'm.keras'}'] mc_samples=5 paper=letter" in r.output
    assert f"sources mc_samples=default_map paper=default_map file={project / 'pyproject.toml'}" in r.output
    r = CliRunner().invoke(toy, ["audit"], env={"REPORTGEN_AUDIT_MC_SAMPLES": "7"}, catch_exceptions=False)
    assert "mc_samples=7 " in r.output and "sources mc_samples=environment" in r.output
    r = CliRunner().invoke(toy, ["audit", "--mc-samples", "9"], env={"REPORTGEN_AUDIT_MC_SAMPLES": "7"}, catch_exceptions=False)
    assert "mc_samples=9 " in r.output and "sources mc_samples=commandline" in r.output
    r = CliRunner().invoke(toy, ["train"], catch_exceptions=False)
    assert r.output.strip() == "output=output/models epochs=3"


def test_config_option_reads_an_explicit_file_and_rejects_a_bad_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = write(tmp_path / "ci.toml", 'fail_on = ["accuracy<0.98", "ece>0.03"]\n[train]\nepochs = 1\n')
    r = CliRunner().invoke(toy, ["--config", str(p), "audit"], catch_exceptions=False)
    assert "fail_on=['accuracy<0.98', 'ece>0.03']" in r.output and "mc_samples=30 paper=a4" in r.output
    assert CliRunner().invoke(toy, ["--config", str(p), "train"]).output.strip() == "output=output/models epochs=1"
    bad = write(tmp_path / "bad.toml", "colour = 'red'\n")
    r = CliRunner().invoke(toy, ["--config", str(bad), "audit"])
    assert r.exit_code == 2
    assert "unknown key 'colour'" in r.output and str(bad) in r.output


def test_a_bad_gate_in_the_configuration_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = write(tmp_path / "ci.toml", 'fail_on = "accuracy<<1"\n')
    r = CliRunner().invoke(toy, ["--config", str(p), "audit"])
    assert r.exit_code == 2
    assert "accuracy<<1" in r.output


def test_every_option_of_the_real_cli_is_configurable_except_the_command_line_only_ones():
    from reportgen.cli import cli

    keys = config.known_keys(cli)
    assert {"mc_samples", "paper", "output", "model", "data", "seed", "rank_by"} <= set(keys)
    assert "force" not in keys and "trust_model" not in keys


def test_real_cli_reads_the_configuration(tmp_path, monkeypatch):
    from conftest import run_cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "archive").mkdir()
    write(tmp_path / "pyproject.toml", '[tool.reportgen]\noutput = "archive"\n')
    r = run_cli(["list", "--json"])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "[]"  # read archive/, not the default output/ (which does not exist here)
    write(tmp_path / "bad.toml", "mc_samples = 5\ncolour = 1\n")
    r = run_cli(["--config", str(tmp_path / "bad.toml"), "list"])
    assert r.exit_code == 2
    assert f"{tmp_path / 'bad.toml'}: unknown key 'colour'" in r.stderr


@pytest.mark.parametrize("env", ["REPORTGEN_AUDIT_FORCE", "REPORTGEN_AUDIT_TRUST_MODEL"])
def test_force_and_trust_model_cannot_come_from_the_environment(env, monkeypatch):
    """An environment variable must never overwrite a report or run code stored in a model file."""
    from reportgen.cli import cli

    monkeypatch.setenv(env, "1")
    ctx = cli.commands["audit"].make_context("audit", [], parent=cli.make_context("reportgen", ["audit"], resilient_parsing=True))
    assert ctx.params["force"] is False and ctx.params["trust_model"] is False
