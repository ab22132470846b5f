"""reportgen: audit reports for image classifiers (uncertainty, calibration, label issues).

Importing the package is cheap: TensorFlow is imported only by the stages that need it.
"""

import os as _os

from .version import __version__  # noqa: F401

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise in a CLI's stderr.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def audit(model_or_probs, images=None, labels=None, **options):
    """Audit a model (or probabilities) in Python; see `reportgen.engines.local.audit`."""
    from .engines.local import audit as _audit

    return _audit(model_or_probs, images, labels, **options)
