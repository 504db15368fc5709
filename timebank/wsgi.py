"""WSGI entry point for gunicorn: ``gunicorn timebank.wsgi:app``.

Each worker marks the database in use for its whole life (timebank.core.in_use), so that
``timebank restore`` refuses while the server runs. A worker that starts while the database cannot be
reached starts all the same (it answers 503) and takes the lock with a later request.
"""

from timebank import create_app
from timebank.core import in_use

app = create_app()
in_use.ensure(app.config)


@app.before_request
def _mark_in_use() -> None:
    in_use.ensure(app.config)  # held already: a flag check; else a retry every few seconds
