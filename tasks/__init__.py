"""Celery wiring (thin): ``celery -A tasks worker`` runs the backup agent.

Tasks here only unpack ids, call into :mod:`workers`, and decide retries and canvas structure.
"""

from tasks.app import QUEUES, app

__all__ = ["QUEUES", "app"]
