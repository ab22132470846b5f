"""What `reportgen audit` and `reportgen train` take, checked once before any slow work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DataError, ModelError, ReportgenError
from ..model.network import DEFAULT_EPOCHS

Progress = Callable[[str], None]
# Engines of `audit` (--engine): one process, or an Apache Beam pipeline (sharded saved predictions, or a model on data).
ENGINES = ("local", "beam")
# Options --engine beam does not take yet, each refused in one line.
BEAM_UNSUPPORTED = {"cv": "--cv", "reviews": "--reviews", "audit_size": "--audit-size", "images": "--images", "ood_data": "--ood-data"}
# Bootstrap replicates of the intervals that need one (the label-error estimate's, compare's paired ones).
DEFAULT_REPLICATES = 1000
# How the shipped model is used: its deterministic pass (Keras' model.predict) or its MC-dropout average.
SHIPPED = ("deterministic", "mc_dropout")


@dataclass(frozen=True)
class TrainOptions:
    """What `reportgen train` needs."""

    data: str | None = None
    output: str = "output/models"
    name: str | None = None
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 128
    seed: int = 0
    train_size: int | None = None
    ensemble: int = 1
    force: bool = False
    preprocess: str | None = None  # network.PREPROCESSING name the CNN trains with (None: the default)


@dataclass(frozen=True)
class AuditOptions:
    """Everything `reportgen audit` takes; the CLI fills it, tests and notebooks may too."""

    data: str | None = None
    models: tuple[str, ...] = ()
    predictions: str | None = None
    labels: str | None = None
    images: str | None = None
    class_names: str | None = None
    output: str = "output"
    name: str | None = None
    version: str | None = None
    force: bool = False
    mc_samples: int = 30
    shipped: str = "deterministic"  # SHIPPED: which inference mode of a dropout model ships (its numbers lead the report)
    seed: int = 0
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 128
    train_size: int | None = None
    audit_size: int | None = None
    rank_by: str = "self_confidence"
    cv: int | None = None  # None: the default (a checker when reportgen trains the model, none with --model); 0: off
    checker: str = "default"
    checker_epochs: int | None = None
    flag_rule: str = "reference"
    reviews: str | None = None
    apply_reviews: bool = False
    bootstrap: int = DEFAULT_REPLICATES
    card: str | None = None
    card_table: dict | None = None
    trust_model: bool = False
    preprocess: str | None = None  # network.PREPROCESSING name; None: the model's own layers, its metadata, else "unit"
    paper: str = "a4"
    fail_on: tuple[str, ...] = ()
    accept: tuple[str, ...] = ()
    ood_data: str | None = None  # images to judge the uncertainty estimates on (default: shifted copies of the audited ones)
    config_file: str | None = None
    option_sources: dict | None = None
    command: str = ""
    engine: str = "local"  # ENGINES name
    beam_options: tuple[str, ...] = ()  # Beam PipelineOptions flags, e.g. "--runner=FlinkRunner", with engine "beam"


def load_card(opts: AuditOptions) -> dict | None:
    """The model card: --card FILE, else [tool.reportgen.card] of the configuration, else none."""
    from ..report import card

    if opts.card:
        return card.load(opts.card)
    if opts.card_table is not None:
        return card.from_table(opts.card_table, f"{opts.config_file or 'configuration'} [tool.reportgen.card]")
    return None


def validate(opts: AuditOptions) -> None:
    """One-line ReportgenError for any option that cannot work, before data, models or TensorFlow are touched."""
    from ..model.checker import RECIPES
    from ..report.folder import check_component
    from ..report.gates import parse_all
    from ..stats.labels import RANKERS, RULES

    choices = (("--rank-by", opts.rank_by, sorted(RANKERS)), ("--flag-rule", opts.flag_rule, list(RULES)),
               ("--checker", opts.checker, list(RECIPES)), ("--engine", opts.engine, list(ENGINES)),
               ("--shipped", opts.shipped, list(SHIPPED)))
    for flag, value, valid in choices:
        if value not in valid:
            raise ReportgenError(f"{flag} {value!r}: choose one of {', '.join(valid)}")
    if opts.mc_samples < 1:
        raise ReportgenError("--mc-samples must be at least 1")
    if opts.bootstrap < 1:
        raise ReportgenError("--bootstrap must be at least 1")
    if opts.cv is not None and opts.cv == 1:
        raise ReportgenError("--cv 1: give K >= 2 folds, or 0 for no checker")
    if opts.beam_options and opts.engine != "beam":
        raise ReportgenError("--beam-option is for --engine beam")
    if opts.engine == "beam":
        for key, flag in BEAM_UNSUPPORTED.items():
            if getattr(opts, key):
                raise ReportgenError(f"{flag} is not supported with --engine beam yet; run it with --engine local")
    if opts.predictions and not opts.labels:
        raise ReportgenError("--predictions needs --labels (the given label of every row)")
    if opts.predictions and opts.models:
        raise ReportgenError("give either --predictions or --model, not both")
    if opts.ood_data and opts.predictions:
        raise ReportgenError("--ood-data needs a model to predict the images: use it with --data (and optionally --model)")
    if opts.cv and opts.predictions:
        raise ReportgenError("--cv trains checker models on images: use it with --data (and optionally --model), not --predictions")
    if opts.apply_reviews and not opts.reviews:
        raise ReportgenError("--apply-reviews needs --reviews FILE (the verdicts to apply)")
    for path in opts.models:  # before any slow work (data loading, downloads, TensorFlow)
        if not Path(path).is_file():
            raise ModelError(f"{path}: no such model file")
    globs = (opts.predictions, opts.labels) if opts.engine == "beam" else ()  # shard globs, matched by the engine
    for path in (opts.predictions, opts.labels, opts.images, opts.class_names, opts.reviews, opts.card):
        if path and path not in globs and not Path(path).is_file():
            raise DataError(f"{path}: no such file")
    if opts.version:
        check_component(opts.version, "version")
    if opts.name:
        check_component(opts.name, "model name")
    parse_all(opts.fail_on)
    parse_all(opts.accept, flag="--accept")
    load_card(opts)  # a bad card fails before any slow work
