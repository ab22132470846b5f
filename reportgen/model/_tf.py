"""Import TensorFlow once, with its C++ start-up logging (absl, oneDNN, CUDA probes) silenced."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_to_devnull():
    """Point file descriptor 2 at /dev/null (C++ logs bypass sys.stderr), then restore it."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # captured or replaced stderr: nothing to silence
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def load_quietly(*, keras: bool = True) -> None:
    """Import tensorflow, tensorflow_probability (and keras unless told not to) without log noise."""
    wanted = ["tensorflow", "tensorflow_probability"] + (["keras"] if keras else [])
    if all(m in sys.modules for m in wanted):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_to_devnull():
        import importlib

        for m in wanted:
            importlib.import_module(m)
        sys.modules["tensorflow"].config.list_physical_devices()
