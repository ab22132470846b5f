"""Image galleries as plain data: each picture a small PNG, its labels and probabilities as text the report sets.

A gallery is a grid of thumbnails, not a plot: drawn as one matplotlib figure it cost seconds of layout and a PDF
full of vector nodes; here every image is a few hundred bytes of PNG and every caption real, searchable text.
"""

from __future__ import annotations

import base64
import io

import numpy as np

# Classes listed under each picture (the most probable first).
TOP_CLASSES = 3
# Thumbnails per row: uncertainty and flagged galleries, and the errors gallery.
COLUMNS, ERROR_COLUMNS = 5, 12
# Characters of a class name kept in a caption.
NAME_CHARS = 12


def thumbnail(image: np.ndarray) -> str:
    """A (H, W, C) uint8 image as a PNG data URI: grey for one or two channels (the first), RGB otherwise."""
    from PIL import Image

    img = np.asarray(image)
    pic = Image.fromarray(img[..., 0] if img.shape[-1] < 3 else img[..., :3])
    buf = io.BytesIO()
    pic.save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _name(names, c: int) -> str:
    return str(names[c])[:NAME_CHARS]


def _top(probs: np.ndarray, std: np.ndarray | None, names) -> str:
    """'7: 0.62 ± 0.05, 1: 0.21, …': the most probable classes, with their spread over the samples when known."""
    order = np.argsort(-probs, kind="stable")[:TOP_CLASSES]
    spread = lambda c: f" ± {std[c]:.2f}" if std is not None else ""  # noqa: E731
    return ", ".join(f"{_name(names, c)}: {probs[c]:.2f}{spread(c)}" for c in order)


def gallery(items, names, *, key: str, title: str, alt: str, note: str, symbol: str, columns: int = COLUMNS,
            probs: bool = True) -> dict:
    """A gallery of report.inputs.GalleryItems: {key, title, alt, note, columns, items: [{uri, name, alt, labels, value, probs}]}."""
    cells = [{"uri": thumbnail(it.image), "name": f"{it.split} #{it.source_row}",
              "alt": f"Image {it.split} #{it.source_row}, labelled {_name(names, it.label)}, predicted "
                     f"{_name(names, it.predicted)}, {symbol} = {it.value:.2f}",
              "labels": f"{_name(names, it.label)} → {_name(names, it.predicted)}", "value": f"{symbol} = {it.value:.2f}",
              "probs": _top(np.asarray(it.probs), None if it.std is None else np.asarray(it.std), names) if probs else ""}
             for it in items]
    return {"key": key, "title": title, "alt": alt, "note": note, "columns": columns, "items": cells}


def report_galleries(results) -> dict:
    """Every gallery of the report, by key (empty when the audit has no images)."""
    g, names = results.galleries, results.data.class_names
    spread = results.sampled is not None
    out = {}
    for key, what, symbol in (("gallery_aleatoric", "aleatoric", "E[H]"), ("gallery_epistemic", "epistemic", "I"),
                              ("gallery_entropy", "total", "H")):
        items = g.get(key) or []
        if items:
            out[key] = gallery(items, names, key=key, symbol=symbol, title=f"Highest {what} uncertainty: true → predicted label",
                               alt=f"The {len(items)} images with the highest {what} uncertainty estimate.",
                               note="under each image: its split and row, true → predicted class, the ranked value (nats) and "
                                    "the most probable classes" + (" with ± one standard deviation over the samples"
                                                                   if spread and key != "gallery_entropy" else ""))
    items = g.get("gallery_errors") or []
    if items:
        n_err = int(results.lead.uncertainty["n_errors"])
        shown = f"{len(items)} of the {n_err:,} errors" if len(items) < n_err else f"all {n_err:,} errors"
        out["gallery_errors"] = gallery(
            items, names, key="gallery_errors", symbol="conf", columns=ERROR_COLUMNS, probs=False,
            title=f"The model's errors ({shown}), grouped by confusion",
            alt=f"Thumbnails of {shown} of the model, grouped by true → predicted class, the most frequent pair first.",
            note="under each image: true → predicted class and the model's confidence; pairs in order of frequency"
                 + ("" if len(items) == n_err else f"; the first {len(items)} (errors of a random sample of the rows when "
                                                    "there are very many)"))
    items = g.get("gallery_flagged") or []
    if items:
        out["gallery_flagged"] = gallery(items, names, key="gallery_flagged", symbol="p(given)",
                                         title="Candidates for human review: given → suggested label",
                                         alt=f"The {len(items)} top-ranked candidates for review.",
                                         note="under each image: given → suggested class, the checker's probability of the "
                                              "given class, and its most probable classes")
    return out
