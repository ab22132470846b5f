"""Benchmark (issue 20): the costs of the default audit that the seed-style script of audit_speed.py does not pay and
that no rewrite of reportgen's own code removes: the lower bound under the audit_speed ratio.

Measured, each in fresh child processes (median of --repeats):
  1. imports the seed script does not make, timed after TensorFlow and Keras are imported (so scipy, matplotlib and
     PIL, which TensorFlow's import already brings in, cost nothing here): tensorflow_probability with the
     Categorical distribution the predictions use, and WeasyPrint;
  2. WeasyPrint laying out and drawing the default report's print HTML (--model on --data, as audit_speed runs it),
     as it is, and with its figures removed (text, tables and image galleries only): what the PDF costs at the
     least, and what its vector figures (issue 10: SVG in the HTML and the PDF) add.

    .venv/bin/python bench/audit_floor.py --data ../shared/data/mnist [--repeats 3]

Needs the model audit_speed.py trains (bench/out/models/); run audit_speed.py first.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import OUT, ROOT, add_data_argument, data_folder, load_average, median, table

IMPORT_AFTER_TF = r'''
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow, keras
t = time.perf_counter()
if sys.argv[1] == "tfp":
    import numpy as np
    import tensorflow_probability as tfp
    tfp.distributions.Categorical(probs=np.full((2, 10), 0.1)).entropy()
else:
    import weasyprint
print(time.perf_counter() - t)
os._exit(0)
'''

PDF = r'''
import logging, sys, time
import weasyprint
logging.getLogger("weasyprint").setLevel(logging.ERROR)
html = open(sys.argv[1], encoding="utf-8").read()
t = time.perf_counter()
doc = weasyprint.HTML(string=html, base_url=sys.argv[2]).render()
t1 = time.perf_counter()
doc.write_pdf(sys.argv[3])
print(t1 - t, time.perf_counter() - t1, len(doc.pages))
'''

KEEP_PRINT_HTML = r'''
import os, sys
from reportgen.report import render
real = render.html_to_pdf
def keep(html, folder, out):
    open(sys.argv[1], "w", encoding="utf-8").write(html)
    return real(html, folder, out)
render.html_to_pdf = keep
from reportgen.cli import cli
try:
    cli(sys.argv[2:], standalone_mode=False)
except SystemExit:
    pass
os._exit(0)
'''


def child(code: str, *args: str) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mc-samples", type=int, default=30)
    add_data_argument(parser)
    args = parser.parse_args()
    data = data_folder(args.data)
    model = next((OUT / "models").glob("audit-speed-default-data-*.keras"), None)
    if model is None:
        sys.exit("no audit_speed model in bench/out/models/: run bench/audit_speed.py first")
    print(f"audit_floor: {data}, model {model.name}, {args.repeats} run(s) each; load average {load_average()}")
    scratch = Path(tempfile.mkdtemp(prefix="audit-floor-"))
    print_html = scratch / "print.html"
    child(KEEP_PRINT_HTML, str(print_html), "audit", "--model", str(model), "--data", str(data), "--mc-samples",
          str(args.mc_samples), "--output", str(scratch / "reports"), "--quiet")
    html = print_html.read_text(encoding="utf-8")
    bare = scratch / "print-no-figures.html"
    bare.write_text(re.sub(r'src="data:image/svg\+xml;base64,[^"]*"', 'src=""', html), encoding="utf-8")
    n_svg = html.count("data:image/svg+xml;base64,")

    rows = []
    for what, arg in (("import tensorflow_probability + Categorical, after TensorFlow", "tfp"),
                      ("import weasyprint, after TensorFlow", "weasyprint")):
        rows.append([what, median([float(child(IMPORT_AFTER_TF, arg)) for _ in range(args.repeats)]), ""])
    for what, page in ((f"PDF of the default report ({n_svg} SVG figures)", print_html), ("PDF without its figures", bare)):
        runs = [child(PDF, str(page), str(scratch) + "/", str(scratch / "x.pdf")).split() for _ in range(args.repeats)]
        layout, draw = median([float(r[0]) for r in runs]), median([float(r[1]) for r in runs])
        rows.append([f"{what}: layout", layout, f"{runs[0][2]} pages"])
        rows.append([f"{what}: drawing", draw, ""])
    print(table(["cost the seed script does not pay", "median s", ""], rows))
    print(f"  load average at end: {load_average()}")


if __name__ == "__main__":
    main()
