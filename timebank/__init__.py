"""timebank: points exchange and volunteer time bank for communities (社区积分超市与时间银行).

The map (docs/architecture.md): ``timebank.core`` (configuration, database, errors, logins, the
application's use of the ledger), one folder per feature (people, earning, hours, shop, audit,
reports, public), the page frame in ``timebank.web`` and operations' tools in ``timebank.ops``.
"""

from timebank.core.app import create_app

__version__ = "0.1.0"

__all__ = ["create_app", "__version__"]
