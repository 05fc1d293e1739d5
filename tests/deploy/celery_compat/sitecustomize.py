"""Stand-in until requirements.lock pins a Celery the Celery provider can import (e2e only).

apache-airflow-providers-celery 3.26.0 imports ``retry`` from ``celery.backends.database``;
celery 5.7.0 (in the lock) removed it (its DatabaseBackend retries by itself now), so the
CeleryExecutor and ``airflow celery worker`` fail at import. The e2e stack puts this folder on
``PYTHONPATH`` of its Celery processes only; the decorator is only used on the provider's
result-backend query, which the e2e run's PostgreSQL result backend answers first time.
It does nothing when ``retry`` exists (a Celery before 5.7 or a fixed provider).
"""

try:
    import celery.backends.database as _database
except ImportError:  # pragma: no cover - Celery not installed
    pass
else:
    if not hasattr(_database, "retry"):
        _database.retry = lambda fun: fun
