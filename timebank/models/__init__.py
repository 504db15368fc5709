"""Domain models. Importing this package registers every table with the shared metadata."""

from timebank.models.people import Community, Household, Resident, User, ApiToken  # noqa: F401
from timebank.models.idempotency import IdempotencyRecord  # noqa: F401
from timebank.accounts import AccountOwner  # noqa: F401,E402
from timebank.audit_log import AuditEntry  # noqa: F401,E402
from timebank.models.earning import (Claim, ClaimEvent, CheckIn, Grid, HelpRequest, Rule,  # noqa: F401,E402
                                      RuleVersion, SchedulerLease, Task)
from timebank.models.shop import Item, StockMovement, Redemption, RedemptionLine  # noqa: F401,E402
from timebank.models.audit import Checkpoint, MonthClose, MonthCloseSignoff, SigningKey  # noqa: F401,E402
from ledger.tree import MerkleNode  # noqa: F401,E402
