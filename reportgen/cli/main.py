"""The `reportgen` command: parses options, calls one pipeline function, turns errors into one line."""

from __future__ import annotations

import os
import shlex
import sys

import click

from .archive import COMMANDS as ARCHIVE_COMMANDS
from .common import (ACCEPT, GATE, Ctx, card_table, config_file, config_option, enforce_gates, global_flags, handle_errors,
                         option_sources)
from ..engines.options import DEFAULT_EPOCHS, DEFAULT_REPLICATES, ENGINES, SHIPPED
from ..model.checker import RECIPES as CHECKERS
from ..model.network import PREPROCESSING
from ..stats.labels import RANKERS, RULES


def preprocess_option(help_text: str):
    """--preprocess NAME: how uint8 pixels are scaled for the model (model.PREPROCESSING)."""
    return click.option("--preprocess", type=click.Choice(list(PREPROCESSING)), default=None, help=help_text)


def training_options(fn):
    """Options that decide how the default CNN is trained (shared by train and audit)."""
    for opt in reversed([
        click.option("--epochs", type=click.IntRange(1), default=DEFAULT_EPOCHS, show_default=True, help="Training epochs of the default CNN."),
        click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True, help="Training batch size."),
        click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed for splits, training and MC sampling."),
        click.option("--train-size", type=click.IntRange(2), default=None, help="Train on at most N images (seeded choice)."),
    ]):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "REPORTGEN"})
@config_option
@click.option("--quiet", "-q", is_flag=True, help="No progress messages (warnings and errors still shown).")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.version_option(package_name="reportgen")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, debug: bool) -> None:
    """Audit an image classifier: uncertainty, calibration and likely label errors, as an HTML + PDF report.

    \b
    Examples:
      reportgen audit                          # default CNN on MNIST, report under output/
      reportgen audit --model m.keras --data data.npz
      reportgen audit --predictions probs.npy --labels labels.npy
    """
    ctx.obj = Ctx(quiet, debug)


@cli.command()
@click.option("--data", default=None, help="'mnist' (default), a .npz (x_train/y_train/x_test/y_test or x/y), a folder of IDX files, a folder of class subfolders of images, or a CSV manifest (path,label[,split]).")
@click.option("--output", "-o", type=click.Path(file_okay=False), default="output/models", show_default=True, help="Folder for <name>.keras and <name>.json.")
@click.option("--name", default=None, help="Model name (default: <data>-cnn).")
@click.option("--ensemble", type=click.IntRange(1), default=1, show_default=True, help="Train K members with seeds seed..seed+K-1 (a deep ensemble).")
@click.option("--force", is_flag=True, allow_from_autoenv=False, help="Overwrite existing model files.")
@preprocess_option("Input scaling the CNN trains with, recorded in its metadata: unit [0, 1] (default), symmetric [-1, 1], raw 0-255, imagenet mean/std.")
@training_options
@global_flags
@handle_errors
def train(obj: Ctx, data, output, name, ensemble, force, preprocess, epochs, batch_size, seed, train_size) -> None:
    """Train the default CNN and save it with its metadata.

    \b
    Example:
      reportgen train --data mnist --epochs 3 --output models/
    """
    from ..engines.inputs import run_train
    from ..engines.options import TrainOptions

    paths = run_train(TrainOptions(data=data, output=output, name=name, epochs=epochs, batch_size=batch_size, seed=seed,
                                   train_size=train_size, ensemble=ensemble, force=force, preprocess=preprocess), progress=obj.progress)
    for p in paths:
        click.echo(str(p))


@cli.command()
@click.option("--data", default=None, help="'mnist' (default), a .npz, a folder of IDX files, a folder of class subfolders of images (optionally under train/ and test/), or a CSV manifest (path,label[,split]).")
@click.option("--model", "models", multiple=True, type=click.Path(dir_okay=False), help="A .keras/.h5 model; repeat for a deep ensemble. Default: train (or reuse) the default CNN.")
@click.option("--predictions", type=click.Path(dir_okay=False), default=None, help="Saved (N, K) probabilities (.npy) from any framework, instead of a model.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None, help="(N,) given labels (.npy), with --predictions.")
@click.option("--images", type=click.Path(dir_okay=False), default=None, help="(N, H, W[, C]) images (.npy), optional with --predictions.")
@click.option("--class-names", type=click.Path(dir_okay=False), default=None, help="Text file, one class name per line.")
@click.option("--ood-data", default=None, help="Images the model was not made for (any format --data takes; labels ignored), to judge the uncertainty estimates on. Default: rotated and noised copies of the audited images.")
@click.option("--output", "-o", type=click.Path(file_okay=False), default="output", show_default=True, help="Archive root: reports go to <output>/<model>/<version>/.")
@click.option("--name", default=None, help="Model name in the archive (default: model file stem).")
@click.option("--version", "version", default=None, help="Version folder (default: first 12 hex digits of the model's sha256).")
@click.option("--force", is_flag=True, allow_from_autoenv=False, help="Overwrite an existing version folder.")
@click.option("--mc-samples", type=click.IntRange(1), default=30, show_default=True, help="MC dropout samples S (1 = deterministic).")
@click.option("--shipped", type=click.Choice(list(SHIPPED)), default="deterministic", show_default=True, help="How a model with dropout is used in production: its deterministic pass (Keras' model.predict) or its MC-dropout average. That mode's numbers lead the report; both are measured.")
@click.option("--audit-size", type=click.IntRange(2), default=None, help="Audit at most N images (seeded choice).")
@click.option("--cv", type=click.IntRange(0), default=None, help="Check every label with K checker models trained by K-fold cross-validation (out-of-sample probabilities); 0 turns the checker off. Default: 4 folds when reportgen trains the audited model (local engine), none with --model.")
@click.option("--checker", type=click.Choice(list(CHECKERS)), default="default", show_default=True, help="Checker recipe for --cv ('seed': the audited default CNN, for comparison).")
@click.option("--checker-epochs", type=click.IntRange(1), default=None, help="Training epochs of each checker model (default: the recipe's own).")
@click.option("--flag-rule", type=click.Choice(list(RULES)), default="reference", show_default=True, help="Which samples to flag: 'reference' is cleanlab's find_label_issues rule exactly; 'capped' caps each class threshold at 0.8 (more flags; bench/README.md measures the trade-off).")
@click.option("--rank-by", type=click.Choice(sorted(RANKERS)), default="self_confidence", show_default=True, help="Ranking of flagged samples.")
@click.option("--reviews", type=click.Path(dir_okay=False), default=None, help="A filled-in review.csv from an earlier audit: reviewer verdicts to carry over.")
@click.option("--apply-reviews", is_flag=True, help="Use the corrected labels of label_wrong reviews for the checker and the metrics.")
@click.option("--card", type=click.Path(dir_okay=False), default=None, help="Model card (TOML): owners, intended use, limitations, ... Default: [tool.reportgen.card] of the configuration.")
@click.option("--bootstrap", type=click.IntRange(1), default=DEFAULT_REPLICATES, show_default=True, help="Bootstrap resamples of the intervals that need one (the estimated label-error rate).")
@click.option("--accept", "accept", multiple=True, type=ACCEPT, help="An acceptance criterion the model must meet, e.g. 'accuracy>=0.98' (repeatable; judged on the metric's 95 % interval: met, not met, or not shown; shown on the report's first page). The model card's 'acceptance' list adds more.")
@click.option("--fail-on", "fail_on", multiple=True, type=GATE, help="Exit 3 after writing the report when EXPR holds, e.g. 'accuracy<0.98' (repeatable; any summary.json metric, < <= > >=).")
@click.option("--trust-model", is_flag=True, allow_from_autoenv=False, help="Allow models with Lambda layers (runs code stored in the file).")
@preprocess_option("Input scaling: unit [0, 1], symmetric [-1, 1], raw 0-255, imagenet mean/std. Default: raw pixels for a model with its own Rescaling/Normalization layer, else its metadata, else unit.")
@click.option("--paper", type=click.Choice(["a4", "letter"]), default="a4", show_default=True, help="PDF paper size.")
@click.option("--engine", type=click.Choice(list(ENGINES)), default="local", show_default=True, help="'beam': run on Apache Beam over sharded saved predictions (--predictions and --labels as globs, matched by shard name) or a model on --data (the --model given, else the default CNN trained first as with local; predicted inside the pipeline); needs pip install 'reportgen[beam]'.")
@click.option("--beam-option", "beam_options", multiple=True, help="A Beam pipeline option for --engine beam, e.g. --beam-option=--runner=FlinkRunner or --beam-option=--direct_num_workers=2 (repeatable).")
@training_options
@global_flags
@handle_errors
def audit(obj: Ctx, data, models, predictions, labels, images, class_names, ood_data, output, name, version, force, mc_samples, shipped,
          audit_size, cv, checker, checker_epochs, flag_rule, rank_by, reviews, apply_reviews, card, bootstrap, accept, fail_on, trust_model, preprocess,
          paper, engine, beam_options, epochs, batch_size, seed, train_size) -> None:
    """Audit a model (or saved probabilities) and write report.html, report.pdf, summary.json, flagged.csv.

    \b
    Examples:
      reportgen audit                                     # default CNN on MNIST
      reportgen audit --model m.keras --data data.npz --mc-samples 30
      reportgen audit --model m.keras --data photos/ --preprocess symmetric   # photos/<class>/<image>
      reportgen audit --predictions probs.npy --labels y.npy --images x.npy
      reportgen audit --data data.npz --cv 5                 # check every label with 5 checker models
      reportgen audit --data data.npz --cv 5 --reviews output/m/v1/review.csv
      reportgen audit --engine beam --predictions 'shards/probs-*.npy' --labels 'shards/labels-*.npy'
      reportgen audit --engine beam --model m.keras --data photos/ --mc-samples 30
    """
    from ..engines.local import run_audit
    from ..engines.options import AuditOptions

    opts = AuditOptions(
        data=data, models=tuple(models), predictions=predictions, labels=labels, images=images, class_names=class_names, ood_data=ood_data,
        output=output, name=name, version=version, force=force, mc_samples=mc_samples, shipped=shipped, seed=seed, epochs=epochs,
        batch_size=batch_size, train_size=train_size, audit_size=audit_size, cv=cv, checker=checker, checker_epochs=checker_epochs, flag_rule=flag_rule,
        rank_by=rank_by, reviews=reviews, apply_reviews=apply_reviews, card=card, card_table=card_table(), bootstrap=bootstrap, trust_model=trust_model, preprocess=preprocess,
        paper=paper, fail_on=tuple(fail_on), accept=tuple(accept), config_file=config_file(), option_sources=option_sources(),
        command=" ".join(shlex.quote(a) for a in ["reportgen", *sys.argv[1:]]), engine=engine, beam_options=tuple(beam_options),
    )
    folder = run_audit(opts, progress=obj.progress)
    click.echo(str(folder))
    enforce_gates(folder, fail_on)


def main() -> None:
    try:
        cli(prog_name="reportgen")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if "tensorflow" not in sys.modules:
            raise
        # TensorFlow's interpreter teardown takes seconds and does nothing for us: every report
        # file is written and closed by now, so flush the streams and leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


for _command in ARCHIVE_COMMANDS:  # list, verify, compare
    cli.add_command(_command)
