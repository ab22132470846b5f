"""Engines chain the stages: `local` in one process, `beam` as an Apache Beam pipeline."""
