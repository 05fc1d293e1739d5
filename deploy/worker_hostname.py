"""The hostname an Airflow worker records on its task instances (``[core] hostname_callable``).

Several Celery workers on one machine (the loopback e2e run) would all record the machine's
name; each sets ``DATACLOUD_WORKER_HOSTNAME`` instead. Elsewhere (compose: one container per
worker, each with its own ``hostname:``) the variable is unset and the FQDN is used.
Importable as ``worker_hostname.hostname`` with ``deploy/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("DATACLOUD_WORKER_HOSTNAME") or socket.getfqdn()
