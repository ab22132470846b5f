"""The data stage: labelled image sets (arrays, IDX, folders, manifests), their provenance, and reviewer verdicts."""
