"""gunicorn settings for ``timebank serve`` (``gunicorn -c python:timebank.ops.gunicorn_conf``).

Command-line options and ``GUNICORN_CMD_ARGS`` override these. Why each one:

- ``preload_app = False``: every worker imports the app after the fork and opens its own database
  connections. A connection (or a SQLAlchemy pool) inherited across ``fork()`` is shared by two
  processes, and on PostgreSQL their messages interleave on one socket. ``post_fork`` below also
  drops any inherited pool in case someone turns ``--preload`` on.
- ``timeout``: a worker silent this long is killed and replaced; ledger writes are short, so only a
  stuck worker reaches it. A streamed export may run longer: it tells the master that the worker is
  alive after every batch it sends (``post_fork`` below), so only an export that stops moving is
  killed. The database transaction of a killed worker is rolled back by the database.
- ``graceful_timeout``: on SIGTERM (``systemctl stop``) workers finish the requests they have for
  this long before they are killed.
- ``max_requests`` with jitter: workers are recycled now and then, so a slow leak never grows.
- ``worker_tmp_dir = /dev/shm``: the heartbeat file lives in memory, so a slow disk cannot make
  the master believe a healthy worker hung.
- ``control_socket_disable``: the control socket's default path is per machine user, so two
  deployments (or a deployment and a test run) would fight over it.
- The access log names the worker's pid (``pid=``), so an operator can tell which worker served what.
"""

from __future__ import annotations

import os
import sys

bind = "127.0.0.1:5000"
workers = 2
worker_class = "sync"
preload_app = False
timeout = 60
graceful_timeout = 20
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
control_socket_disable = True
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms pid=%(p)s'


def post_fork(server, worker):  # pragma: no cover - runs inside gunicorn workers
    """Never reuse a database pool made before the fork (only possible with ``--preload``); let a
    long export tell the master that this worker is alive (``timebank.core.exports.keep_alive``)."""
    from timebank.core import exports

    exports.on_progress(worker.notify)
    module = sys.modules.get("timebank.wsgi")
    if module is None:
        return
    from timebank.core.extensions import db

    with module.app.app_context():
        # close=False: leave the parent's connections alone, just forget them in this process.
        db.engine.dispose(close=False)
