"""WSGI entry point for gunicorn: ``gunicorn timebank.wsgi:app``."""

from timebank import create_app

app = create_app()
