"""The ledger browser and verification (committee, supervisor, admin)."""

from __future__ import annotations

from datetime import UTC

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import select

from ledger.models import Account, Posting, Transaction
from timebank.audit.ledger_browser import ledger_query
from timebank.audit.verify import verify_everything
from timebank.core.errors import Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.http import ListArgs, LocalDateTime, current_user, paginate
from timebank.core.policy import can_see_community, require_role
from timebank.people.operations import community_by_code

blp = Blueprint("ledger", __name__, url_prefix="/api/v1/ledger", description="The append-only ledger and its proofs.")

AUDITORS = ("committee", "supervisor")
#: Who reads transactions: the auditors, and a resident their own household's (and their own).
READERS = (*AUDITORS, "resident")


class LedgerFilters(Schema):
    """The ledger browser's filters (its pages, its exports, its background exports)."""

    community_code = fields.String(load_default=None)
    household_id = fields.Integer(load_default=None)
    resident_id = fields.Integer(load_default=None)
    category = fields.String(load_default=None)
    kind = fields.String(load_default=None)
    since = fields.AwareDateTime(load_default=None, default_timezone=UTC)
    until = fields.AwareDateTime(load_default=None, default_timezone=UTC)


class TransactionQuery(ListArgs, LedgerFilters):
    pass


class PostingOut(Schema):
    account = fields.String()
    amount = fields.Integer()
    unit = fields.String()


class TransactionOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    category = fields.String(allow_none=True)
    memo = fields.String()
    reference = fields.String(allow_none=True)
    created_at = LocalDateTime()
    actor = fields.String(allow_none=True)
    postings = fields.List(fields.Nested(PostingOut))
    hash = fields.String()
    prev_hash = fields.String()
    leaf_hash = fields.String()
    reverses_id = fields.Integer(allow_none=True)


class TransactionPage(Schema):
    items = fields.List(fields.Nested(TransactionOut))
    next_cursor = fields.String(allow_none=True)


class VerifyOut(Schema):
    ok = fields.Boolean()
    size = fields.Integer()
    head_hash = fields.String()
    problems = fields.List(fields.Dict())
    first_bad_transaction = fields.Integer(allow_none=True)


def with_postings(transactions: list[Transaction]) -> list[dict]:
    ids = [t.id for t in transactions]
    legs: dict[int, list] = {i: [] for i in ids}
    if ids:
        rows = db.session.execute(
            select(Posting.transaction_id, Account.code, Posting.amount, Posting.unit)
            .join(Account, Account.id == Posting.account_id)
            .where(Posting.transaction_id.in_(ids)).order_by(Posting.id)
        )
        for r in rows:
            legs[r.transaction_id].append({"account": r.code, "amount": r.amount, "unit": r.unit})
    out = []
    for t in transactions:
        out.append({c: getattr(t, c) for c in (
            "id", "kind", "category", "memo", "reference", "created_at", "actor", "hash", "prev_hash",
            "leaf_hash", "reverses_id")} | {"postings": legs[t.id]})
    return out


def _resident_query(args: dict, user):
    """A resident's own view: the transactions of their household's points and of their own minutes.
    Naming another household, resident or community is answered as if it did not exist."""
    resident = user.resident
    if resident is None:
        raise Forbidden("This login belongs to no resident.")
    if args.get("household_id") not in (None, resident.household_id):
        raise NotFound("No such household.")
    if args.get("resident_id") not in (None, resident.id):
        raise NotFound("No such resident.")
    if args.get("community_code") and community_by_code(args["community_code"]).id != resident.household.community_id:
        raise NotFound("No such community.")
    if args.get("since") and args.get("until") and args["since"] > args["until"]:
        raise ValidationFailed(errors={"until": ["Must not be before since."]})
    return ledger_query(household_or_resident=(resident.household_id, resident.id),
                        household_id=args.get("household_id"), resident_id=args.get("resident_id"),
                        category=args.get("category"), kind=args.get("kind"), since=args.get("since"),
                        until=args.get("until"))


def transaction_query(args: dict, user):
    """The filtered query behind the ledger browser and its exports, scoped to what ``user`` may see."""
    if user.role == "resident":
        return _resident_query(args, user)
    return ledger_query(**transaction_filters(args, user))


def transaction_filters(args: dict, user) -> dict:
    """``ledger_query``'s arguments for ``args``, scoped to the community a staff ``user`` may see
    (``community_id`` None: every community, an administrator's)."""
    community_id = None if user.role == "admin" else user.community_id
    if args.get("community_code"):
        wanted = community_by_code(args["community_code"]).id
        if community_id is not None and wanted != community_id and not can_see_community(user, wanted):
            raise Forbidden("This belongs to another community.")
        community_id = wanted
    if args.get("since") and args.get("until") and args["since"] > args["until"]:
        raise ValidationFailed(errors={"until": ["Must not be before since."]})
    return {"community_id": community_id, "household_id": args.get("household_id"),
            "resident_id": args.get("resident_id"), "category": args.get("category"), "kind": args.get("kind"),
            "since": args.get("since"), "until": args.get("until")}


@blp.route("/transactions")
class Transactions(MethodView):
    @blp.arguments(TransactionQuery, location="query")
    @blp.response(200, TransactionPage)
    def get(self, args):
        """Browse the ledger, newest first. Postings of one transaction sum to zero per unit. A resident
        sees the transactions of their household's points and of their own minutes."""
        user = current_user()
        require_role(user, *READERS)
        page = paginate(transaction_query(args, user), Transaction.id, args["limit"], args["cursor"], descending=True)
        page["items"] = with_postings(page["items"])
        return page


@blp.route("/transactions/<int:transaction_id>")
class TransactionOne(MethodView):
    @blp.response(200, TransactionOut)
    def get(self, transaction_id):
        """One transaction (a resident: one of their household's or their own; its inclusion proof is at
        `/ledger/transactions/{id}/inclusion-proof`)."""
        user = current_user()
        require_role(user, *READERS)
        query = transaction_query({}, user).where(Transaction.id == transaction_id)
        tx = db.session.execute(query).scalar_one_or_none()
        if tx is None:
            raise NotFound("No such transaction.")
        return with_postings([tx])[0]


@blp.route("/verify")
class Verify(MethodView):
    @blp.response(200, VerifyOut)
    def get(self):
        """Re-derive the hash chain, the checkpoints and every balance from the entries."""
        require_role(current_user(), *AUDITORS)
        return verify_everything()
