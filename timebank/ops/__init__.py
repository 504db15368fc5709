"""Operations' tools: backup and restore, the input guard, proxy settings, gunicorn's configuration."""
