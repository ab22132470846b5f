"""One finished audit, from either engine: its results, what it was of, and how to write its report folder."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError
from ..report.folder import refuse_existing, staged_folder
from ..version import __version__
from .inputs import say
from .options import Progress


@dataclass
class Audit:
    """One finished audit: the numbers (as in the CLI's summary.json) and how to write the report.

    results: report.inputs.AuditResults (either engine's); method: how the predictions were made
    (model.predict.PredictInfo as a dict); predictions: writes predictions.csv.gz into a path (None when a sharded run
    wrote its per-shard files already).
    """

    results: object
    method: dict
    model_name: str
    version: str
    model_info: dict
    data_role: str
    notes: list[str]
    options: dict
    has_images: bool = True
    command: str = ""
    dataset_info: dict = field(default_factory=dict)
    card: dict | None = None
    predictions: object | None = None

    @property
    def metrics(self) -> dict:
        """Headline metrics, keyed as in summary.json's "metrics"."""
        return self.results.metrics

    def context(self) -> dict:
        """The report context (figures included), as report.html / .pdf / summary.json see it."""
        from ..report import context, figures, galleries

        return context.build_context(
            results=self.results, figures=figures.report_figures(self.results),
            galleries=galleries.report_galleries(self.results) if self.has_images else {}, method=self.method,
            model_name=self.model_name, version=self.version, model_info=self.model_info, data_role=self.data_role,
            notes=self.notes, command=self.command, options=self.options, reportgen_version=__version__,
            created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), dataset_info=self.dataset_info,
            card=self.card)

    def write(self, folder: str | Path, *, force: bool = False, paper: str = "a4", progress: Progress | None = None) -> Path:
        """Write the report files into `folder` atomically: refused when it exists unless `force`, and when another run
        creates it meanwhile (report.folder.staged_folder)."""
        from ..report import context as report
        from ..report.files import write_all

        final = Path(folder)
        refuse_existing(final, force)
        say(progress, "drawing figures")
        ctx = self.context()
        say(progress, f"rendering the report into {final}")
        try:
            with staged_folder(final, force=force) as stage:
                write_all(stage, ctx, html=report.render_html(ctx, paper=paper), print_html=report.render_html(ctx, paper=paper, medium="print"),
                          markdown=report.render_markdown(ctx), results=self.results, predictions=self.predictions, card=self.card)
        except OSError as e:
            raise OutputError(f"{final}: cannot write the report ({e.strerror or e})") from e
        return final
