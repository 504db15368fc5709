"""WSGI entry point for gunicorn: ``gunicorn timebank.wsgi:app``.

Each worker marks the database in use for its whole life (timebank.core.in_use), so that
``timebank restore`` refuses while the server runs.
"""

from timebank import create_app
from timebank.core import in_use

app = create_app()
in_use.hold(app.config)
