"""Core primitives: errors, keys, mutations, container, formats, cluster drivers. No Celery here."""
