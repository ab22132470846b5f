"""reportgen: audit reports for image classifiers (uncertainty, calibration, label issues).

Importing the package is cheap: TensorFlow is imported only by the stages that need it.
"""

__version__ = "0.1.0"
