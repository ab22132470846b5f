"""The archive: many report folders, listed, indexed, compared and verified."""
