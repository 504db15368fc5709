"""Reads that may go to a PostgreSQL streaming replica (``TIMEBANK_READ_DATABASE_URL``).

The monthly report and the exports are the long reads of the application; on a deployment that
has a replica they run there (:func:`timebank.core.database.reading` with ``replica=True``), so the
primary keeps its connections and its cache for the writers. Inside that block every statement of
the session goes to the replica's engine (the ``replica`` bind of Flask-SQLAlchemy; no table is
bound to it); outside it, and on a deployment without a replica, nothing changes.

A replica answers what the primary had a moment ago (streaming replication's lag, usually well
under a second): a report or an export read there may miss the last sale. docs/deploy.md says how
to set one up and how to watch the lag.
"""

from __future__ import annotations

from contextvars import ContextVar

from flask_sqlalchemy.session import Session

#: Whether the statements of this context go to the replica.
use_replica: ContextVar[bool] = ContextVar("timebank_use_replica", default=False)

REPLICA = "replica"


class ReplicaAwareSession(Session):
    """Flask-SQLAlchemy's session, sending every statement to the replica inside a replica block."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        if bind is None and use_replica.get():
            engines = self._db.engines
            if REPLICA in engines:
                return engines[REPLICA]
        if mapper is None and clause is None and bind is None and not kwargs:
            # The session's own connection (``session.connection()``, which the driver-cursor paths
            # ask for a dozen times a sale): the app's default engine, looked up once per session.
            primary = self.__dict__.get("_timebank_primary")
            if primary is None:
                primary = self.__dict__["_timebank_primary"] = super().get_bind()
            return primary
        return super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
