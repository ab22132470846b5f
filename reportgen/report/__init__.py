"""The report stage: a report folder's context, sentences, figures, HTML, PDF, files and manifest."""
