"""The statistics: pure numpy functions of mergeable sufficient statistics (no TensorFlow here)."""
