"""Audit and transparency: signed checkpoints, Merkle proofs, month close (月结) and the audit log.

Checkpoints, the public key and proofs reveal only hashes, so anyone may read them without logging
in: whoever holds the public key can check the ledger. Making a checkpoint needs committee or admin.
Month closes and the audit log are for committee, supervisor and admin of the community.
"""

from __future__ import annotations

import json
from datetime import UTC

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from ledger import merkle
from ledger.tree import MerkleTree
from timebank.audit import checkpoints as ops
from timebank.audit import month_close as closes
from timebank.audit import statements
from timebank.audit import witnesses as witness_ops
from timebank.audit.models import Checkpoint
from timebank.core.audit_log import AuditEntry
from timebank.core.errors import Forbidden, NotFound, ValidationFailed
from timebank.core.extensions import db
from timebank.core.http import ListArgs, LocalDateTime, current_user, decode_cursor, encode_cursor, paginate
from timebank.core.policy import require_community, require_role, visible_household
from timebank.people.models import Community, Household
from timebank.people.operations import community_by_code

blp = Blueprint("audit", __name__, url_prefix="/api/v1",
                description="Signed checkpoints, Merkle proofs, month close and the audit log.")

PUBLIC = [{}]  # OpenAPI: no authentication needed
AUDITORS = ("committee", "supervisor")


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------


class CosignatureOut(Schema):
    name = fields.String(metadata={"description": "the witness's key name"})
    key_id = fields.String(metadata={"description": "cosignature/v1 key ID, hex"})
    timestamp = fields.Integer(metadata={"description": "POSIX seconds, as signed by the witness"})
    signature = fields.String(metadata={"description": "base64 of key ID || timestamp (u64) || Ed25519 signature"})
    received_at = LocalDateTime()


class CheckpointOut(Schema):
    id = fields.Integer()
    tree_size = fields.Integer()
    root_hash = fields.String(metadata={"description": "lowercase hex"})
    timestamp = LocalDateTime(metadata={"description": "when it was made; not covered by the signature"})
    note = fields.String(metadata={"description": "the exact signed text (C2SP tlog-checkpoint body)"})
    signature = fields.String(metadata={"description": "base64 Ed25519 signature over the note's bytes"})
    key_id = fields.String()
    cosignatures = fields.List(fields.Nested(CosignatureOut), metadata={
        "description": "witnesses' C2SP tlog-cosignatures of this checkpoint"})
    signed_note = fields.String(metadata={
        "description": "the C2SP signed note: body, blank line, the log's signature line, one line per cosignature"})


class CheckpointPage(Schema):
    items = fields.List(fields.Nested(CheckpointOut))
    next_cursor = fields.String(allow_none=True)


class PublicKeyOut(Schema):
    key_id = fields.String()
    public_key = fields.String(metadata={"description": "base64 of the raw 32-byte Ed25519 key"})
    origin = fields.String()
    created_at = LocalDateTime()
    current = fields.Boolean()


class KeyList(Schema):
    items = fields.List(fields.Nested(PublicKeyOut))


class InclusionArgs(Schema):
    tree_size = fields.Integer(load_default=None, validate=validate.Range(min=1),
                               metadata={"description": "default: the current ledger size"})


class InclusionOut(Schema):
    transaction_id = fields.Integer()
    leaf_index = fields.Integer()
    tree_size = fields.Integer()
    leaf_hash = fields.String()
    audit_path = fields.List(fields.String())
    root_hash = fields.String()


class ConsistencyArgs(Schema):
    first = fields.Integer(required=True, validate=validate.Range(min=0))
    second = fields.Integer(required=True, validate=validate.Range(min=0))


class ConsistencyOut(Schema):
    first = fields.Integer()
    second = fields.Integer()
    proof = fields.List(fields.String())
    first_root = fields.String()
    second_root = fields.String()


class TreeHeadArgs(Schema):
    tree_size = fields.Integer(load_default=None, validate=validate.Range(min=0))


class TreeHeadOut(Schema):
    tree_size = fields.Integer()
    root_hash = fields.String()


class MonthCloseIn(Schema):
    community_code = fields.String(required=True, validate=validate.Length(1, 64))
    month = fields.String(required=True, validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$",
                                                                  error="Use YYYY-MM, e.g. 2026-03."))


class SignoffOut(Schema):
    user_id = fields.Integer()
    username = fields.String(allow_none=True)
    signed_at = LocalDateTime()


class MonthCloseOut(Schema):
    community_code = fields.String()
    month = fields.String()
    status = fields.String(metadata={"description": "open | pending_second | closed"})
    signoffs = fields.List(fields.Nested(SignoffOut))
    closed_at = LocalDateTime(allow_none=True)
    statement = fields.Dict(allow_none=True, metadata={"description": "the signed statement, parsed"})
    statement_text = fields.String(allow_none=True, metadata={"description": "the exact signed bytes (UTF-8)"})
    signature = fields.String(allow_none=True, metadata={"description": "base64 Ed25519 over statement_text"})
    key_id = fields.String(allow_none=True)
    preview = fields.Dict(allow_none=True, metadata={"description": "live totals of a month not yet closed"})


class MonthCloseQuery(ListArgs):
    community_code = fields.String(load_default=None)


class MonthClosePage(Schema):
    items = fields.List(fields.Nested(MonthCloseOut))
    next_cursor = fields.String(allow_none=True)


class AuditQuery(ListArgs):
    community_code = fields.String(load_default=None)
    action = fields.String(load_default=None)
    user_id = fields.Integer(load_default=None)
    since = fields.AwareDateTime(load_default=None, default_timezone=UTC)
    until = fields.AwareDateTime(load_default=None, default_timezone=UTC)


class AuditOut(Schema):
    id = fields.Integer()
    created_at = LocalDateTime()
    user_id = fields.Integer(allow_none=True)
    actor = fields.String()
    community_code = fields.String(allow_none=True)
    action = fields.String()
    target = fields.String(allow_none=True)
    details = fields.Dict()
    address = fields.String(allow_none=True)


class AuditPage(Schema):
    items = fields.List(fields.Nested(AuditOut))
    next_cursor = fields.String(allow_none=True)


# --------------------------------------------------------------------------------------------
# Checkpoints and keys
# --------------------------------------------------------------------------------------------


@blp.route("/ledger/checkpoints")
class Checkpoints(MethodView):
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, CheckpointPage)
    @blp.doc(security=PUBLIC)
    def get(self, args):
        """Signed checkpoints, newest first (public: no login needed)."""
        page = paginate(select(Checkpoint), Checkpoint.id, args["limit"], args["cursor"], descending=True)
        page["items"] = ops.checkpoint_dicts(page["items"])
        return page

    @blp.response(201, CheckpointOut)
    @blp.alt_response(200, schema=CheckpointOut, description="the ledger has not grown since the newest "
                                                              "checkpoint: that one is returned")
    @blp.alt_response(403, description="forbidden (not committee or admin); read_only_role (supervisor)")
    def post(self):
        """Sign a checkpoint of the ledger now (committee, admin)."""
        user = current_user()
        require_role(user, "committee")
        cp, created = ops.make_checkpoint(user=user)
        return ops.checkpoint_dict(cp), 201 if created else 200


@blp.route("/ledger/checkpoints/latest")
class LatestCheckpoint(MethodView):
    @blp.response(200, CheckpointOut)
    @blp.alt_response(404, description="not_found: no checkpoint yet")
    @blp.doc(security=PUBLIC)
    def get(self):
        """The newest signed checkpoint (public)."""
        cp = ops.latest_checkpoint()
        if cp is None:
            raise NotFound("No checkpoint has been made yet.")
        return ops.checkpoint_dict(cp)


def _key_dict(row, current_id):
    return {"key_id": row.key_id, "public_key": row.public_key, "origin": row.origin,
            "created_at": row.created_at, "current": row.key_id == current_id}


@blp.route("/ledger/public-key")
class PublicKey(MethodView):
    @blp.response(200, PublicKeyOut)
    @blp.alt_response(404, description="not_found: no signing key set up yet (`timebank init-db` makes it)")
    @blp.doc(security=PUBLIC)
    def get(self):
        """The current checkpoint signing key (public): base64 of the raw 32-byte Ed25519 key."""
        row = ops.public_keys().get(ops.current_key_id() or "")
        if row is None:  # `timebank init-db` creates and registers it; a GET never does
            raise NotFound("No signing key has been set up yet (timebank init-db creates it).")
        return _key_dict(row, row.key_id)


@blp.route("/ledger/signing-keys")
class SigningKeys(MethodView):
    @blp.response(200, KeyList)
    @blp.doc(security=PUBLIC)
    def get(self):
        """Every key that ever signed (public), so checkpoints made before a rotation still verify."""
        current_id = ops.current_key_id()
        return {"items": [_key_dict(r, current_id) for r in ops.public_keys().values()]}


# --------------------------------------------------------------------------------------------
# Witnesses and their cosignatures (C2SP tlog-cosignature)
# --------------------------------------------------------------------------------------------


class WitnessIn(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200),
                         metadata={"description": "the witness's key name, e.g. witness.example.org/w1"})
    public_key = fields.String(required=True, validate=validate.Length(1, 64),
                               metadata={"description": "base64 of the raw 32-byte Ed25519 key"})


class WitnessOut(Schema):
    id = fields.Integer()
    name = fields.String()
    public_key = fields.String()
    key_id = fields.String(metadata={"description": "cosignature/v1 key ID: SHA-256(name || 0x0A || 0x04 || key)[:4]"})
    created_at = LocalDateTime()


class WitnessList(Schema):
    items = fields.List(fields.Nested(WitnessOut))


class CosignatureIn(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    signature = fields.String(required=True, validate=validate.Length(1, 200), metadata={
        "description": "base64 of the 76-byte note signature: key ID || timestamp || Ed25519 signature over "
                       "\"cosignature/v1\\ntime <timestamp>\\n\" + the checkpoint's note"})


def _witness_dict(w) -> dict:
    return {"id": w.id, "name": w.name, "public_key": w.public_key, "key_id": w.key_id, "created_at": w.created_at}


@blp.route("/ledger/witnesses")
class Witnesses(MethodView):
    @blp.response(200, WitnessList)
    @blp.doc(security=PUBLIC)
    def get(self):
        """The witnesses whose cosignatures this deployment keeps (public)."""
        return {"items": [_witness_dict(w) for w in witness_ops.witnesses()]}

    @blp.arguments(WitnessIn)
    @blp.response(201, WitnessOut)
    @blp.alt_response(403, description="forbidden: admin only")
    @blp.alt_response(409, description="witness_exists: that name or key is registered already")
    def post(self, body):
        """Trust a witness to cosign checkpoints (admin): its key name and Ed25519 public key."""
        user = current_user()
        require_role(user)
        return _witness_dict(witness_ops.register_witness(user, body["name"], body["public_key"]))


@blp.route("/ledger/checkpoints/<int:tree_size>/cosignatures")
class Cosignatures(MethodView):
    @blp.arguments(CosignatureIn)
    @blp.response(201, CheckpointOut)
    @blp.alt_response(200, schema=CheckpointOut, description="this witness had cosigned the checkpoint already")
    @blp.alt_response(404, description="not_found: no checkpoint of that tree size")
    @blp.alt_response(422, description="validation_error; witness_unknown: no witness of that name is registered; "
                                       "cosignature_invalid: malformed, another key, not over this checkpoint, "
                                       "or dated in the future")
    @blp.doc(security=PUBLIC)
    def post(self, body, tree_size):
        """A registered witness's cosignature of the checkpoint of `tree_size` (no login: the signature is
        checked against the witness's registered key). Answers the checkpoint with its cosignatures.
        422 `witness_unknown`, 422 `cosignature_invalid`."""
        _, cp, created = witness_ops.add_cosignature(tree_size, body["name"], body["signature"])
        return ops.checkpoint_dict(cp), 201 if created else 200


# --------------------------------------------------------------------------------------------
# Proofs
# --------------------------------------------------------------------------------------------


def _size_error(field: str, tree: MerkleTree, size: int):
    raise ValidationFailed(f"The ledger has {tree.size()} transactions.",
                           errors={field: [f"Must not exceed the ledger's size ({tree.size()})."]})


@blp.route("/ledger/transactions/<int:transaction_id>/inclusion-proof")
class InclusionProof(MethodView):
    @blp.arguments(InclusionArgs, location="query")
    @blp.response(200, InclusionOut)
    @blp.alt_response(404, description="not_found: no such transaction")
    @blp.alt_response(422, description="validation_error: tree_size beyond the ledger or below the transaction id")
    @blp.doc(security=PUBLIC)
    def get(self, args, transaction_id):
        """RFC 6962 audit path of a transaction (leaf index = id - 1) in the tree of `tree_size` leaves."""
        tree = MerkleTree(db.session, read_only=True)
        if not 1 <= transaction_id <= tree.size():
            raise NotFound("No such transaction.")
        size = args["tree_size"] if args["tree_size"] is not None else tree.size()
        if size > tree.size():
            _size_error("tree_size", tree, size)
        if size < transaction_id:
            raise ValidationFailed(errors={"tree_size": [f"A tree of {size} leaves does not hold transaction "
                                                         f"{transaction_id}."]})
        index = transaction_id - 1
        path = tree.inclusion_proof(index, size)
        out = {"transaction_id": transaction_id, "leaf_index": index, "tree_size": size,
               "leaf_hash": merkle.to_hex(tree.leaf_hash(index)),
               "audit_path": [merkle.to_hex(h) for h in path], "root_hash": merkle.to_hex(tree.root(size))}
        return out


@blp.route("/ledger/consistency-proof")
class ConsistencyProof(MethodView):
    @blp.arguments(ConsistencyArgs, location="query")
    @blp.response(200, ConsistencyOut)
    @blp.alt_response(422, description="validation_error: first > second, or second beyond the ledger")
    @blp.doc(security=PUBLIC)
    def get(self, args):
        """RFC 6962 proof that the tree of `first` leaves is a prefix of the tree of `second` leaves."""
        first, second = args["first"], args["second"]
        tree = MerkleTree(db.session, read_only=True)
        if first > second:
            raise ValidationFailed(errors={"first": ["Must not be greater than second."]})
        if second > tree.size():
            _size_error("second", tree, second)
        proof = tree.consistency_proof(first, second)
        out = {"first": first, "second": second, "proof": [merkle.to_hex(h) for h in proof],
               "first_root": merkle.to_hex(tree.root(first)), "second_root": merkle.to_hex(tree.root(second))}
        return out


@blp.route("/ledger/tree-head")
class TreeHead(MethodView):
    @blp.arguments(TreeHeadArgs, location="query")
    @blp.response(200, TreeHeadOut)
    @blp.alt_response(422, description="validation_error: tree_size beyond the ledger")
    @blp.doc(security=PUBLIC)
    def get(self, args):
        """The Merkle root of the first `tree_size` transactions (default: all). Unsigned: for signed
        roots use the checkpoints."""
        tree = MerkleTree(db.session, read_only=True)
        size = tree.size() if args["tree_size"] is None else args["tree_size"]
        if size > tree.size():
            _size_error("tree_size", tree, size)
        out = {"tree_size": size, "root_hash": merkle.to_hex(tree.root(size))}
        return out


# --------------------------------------------------------------------------------------------
# A household's monthly statement, with inclusion proofs
# --------------------------------------------------------------------------------------------


class StatementArgs(Schema):
    month = fields.String(required=True, validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$",
                                                                  error="Use YYYY-MM, e.g. 2026-03."))


class StatementHouseholdOut(Schema):
    id = fields.Integer()
    name = fields.String()
    member_code = fields.String()
    address = fields.String(allow_none=True)
    community_code = fields.String()
    community_name = fields.String()
    account = fields.String(metadata={"description": "the ledger account of the household's points"})


class StatementEntryOut(Schema):
    id = fields.Integer(metadata={"description": "transaction id (leaf index + 1)"})
    created_at = LocalDateTime()
    kind = fields.String()
    category = fields.String(allow_none=True)
    memo = fields.String()
    amount = fields.Integer(metadata={"description": "points into (+) or out of (-) the household"})
    leaf = fields.String(metadata={"description": "the exact leaf bytes (UTF-8), docs/ledger-format.md"})
    leaf_hash = fields.String()


class StatementOut(Schema):
    format = fields.String(metadata={"description": "timebank-statement/v1"})
    household = fields.Nested(StatementHouseholdOut)
    month = fields.String()
    unit = fields.String()
    opening = fields.Integer()
    closing = fields.Integer()
    transactions = fields.List(fields.Nested(StatementEntryOut))
    checkpoint = fields.Nested(CheckpointOut, allow_none=True, metadata={
        "description": "the newest signed checkpoint, which the proofs are against (null before the first)"})
    proofs = fields.List(fields.Nested(InclusionOut), metadata={
        "description": "one inclusion proof per transaction the checkpoint covers"})
    complete = fields.Boolean(metadata={"description": "every transaction has its proof"})
    digest = fields.String(metadata={"description": "SHA-256 of the account, month, balances and leaf hashes"})
    qr_text = fields.String(metadata={"description": "the printed statement's QR code"})


@blp.route("/households/<int:household_id>/statement")
class HouseholdStatement(MethodView):
    @blp.arguments(StatementArgs, location="query")
    @blp.response(200, StatementOut)
    @blp.alt_response(404, description="not_found: no such household (or not one this login may see)")
    @blp.alt_response(422, description="validation_error: month is not YYYY-MM, or has not started")
    def get(self, args, household_id):
        """A household's points in one month with each transaction's inclusion proof against the newest
        signed checkpoint (the household's residents, staff of its community, admin). Check it offline
        with `tools/verify_checkpoint.py statement` (docs/verify.md)."""
        household = visible_household(current_user(), db.session.get(Household, household_id))
        return statements.household_statement(household, args["month"])


# --------------------------------------------------------------------------------------------
# Month close
# --------------------------------------------------------------------------------------------


@blp.route("/month-closes")
class MonthCloses(MethodView):
    @blp.arguments(MonthCloseIn)
    @blp.response(201, MonthCloseOut)
    @blp.alt_response(403, description="forbidden: not a committee member of the community")
    @blp.alt_response(409, description="same_signer: the same member signed twice; already_closed; "
                      "month_not_ended: the month is still running (or later)")
    @blp.alt_response(422, description="validation_error: bad month, or a month not yet started")
    def post(self, body):
        """Sign a community's month off (月结). The second sign-off by a different committee member
        closes the month and produces the signed statement."""
        user = current_user()
        community = community_by_code(body["community_code"])
        closes.sign_off(user, community, body["month"])
        return closes.describe(community, body["month"], preview=False)

    @blp.arguments(MonthCloseQuery, location="query")
    @blp.response(200, MonthClosePage)
    def get(self, args):
        """Months with sign-offs, newest first (committee, supervisor, admin)."""
        user = current_user()
        require_role(user, *AUDITORS)
        if args["community_code"]:
            wanted = [community_by_code(args["community_code"])]
            require_community(user, wanted[0].id)
        elif user.role == "admin":
            wanted = list(db.session.execute(select(Community).order_by(Community.code)).scalars())
        else:
            wanted = [db.session.get(Community, user.community_id)]
        rows = [(c, m) for c in wanted for m in closes.months_of(c.id)]
        rows.sort(key=lambda cm: (cm[1], cm[0].code), reverse=True)
        offset = decode_cursor(args["cursor"]) or 0
        chunk = rows[offset:offset + args["limit"]]
        more = offset + args["limit"] < len(rows)
        return {"items": [closes.describe(c, m, preview=False) for c, m in chunk],
                "next_cursor": encode_cursor(offset + args["limit"]) if more else None}


@blp.route("/month-closes/<community_code>/<month>")
class MonthCloseOne(MethodView):
    @blp.response(200, MonthCloseOut)
    @blp.alt_response(422, description="validation_error: month is not YYYY-MM")
    def get(self, community_code, month):
        """One community's month: status, sign-offs and the signed statement (or a live preview)."""
        user = current_user()
        require_role(user, *AUDITORS)
        community = community_by_code(community_code)
        require_community(user, community.id)
        closes.parse_month(month)
        return closes.describe(community, month)


# --------------------------------------------------------------------------------------------
# Audit log
# --------------------------------------------------------------------------------------------


@blp.route("/audit-log")
class AuditLog(MethodView):
    @blp.arguments(AuditQuery, location="query")
    @blp.response(200, AuditPage)
    def get(self, args):
        """The append-only log of staff actions, newest first (committee, supervisor, admin).
        Staff see their own community's entries."""
        user = current_user()
        require_role(user, *AUDITORS)
        query = select(AuditEntry)
        community_id = None if user.role == "admin" else user.community_id
        if args["community_code"]:
            wanted = community_by_code(args["community_code"]).id
            if community_id is not None and wanted != community_id:
                raise Forbidden("This belongs to another community.")
            community_id = wanted
        if community_id is not None:
            query = query.where(AuditEntry.community_id == community_id)
        if args["action"]:
            query = query.where(AuditEntry.action == args["action"])
        if args["user_id"] is not None:
            query = query.where(AuditEntry.user_id == args["user_id"])
        if args["since"] and args["until"] and args["since"] > args["until"]:
            raise ValidationFailed(errors={"until": ["Must not be before since."]})
        if args["since"]:
            query = query.where(AuditEntry.created_at >= args["since"].astimezone(UTC).replace(tzinfo=None))
        if args["until"]:
            query = query.where(AuditEntry.created_at < args["until"].astimezone(UTC).replace(tzinfo=None))
        page = paginate(query, AuditEntry.id, args["limit"], args["cursor"], descending=True)
        codes = dict(db.session.execute(select(Community.id, Community.code)).all())
        page["items"] = [
            {"id": e.id, "created_at": e.created_at, "user_id": e.user_id, "actor": e.actor,
             "community_code": codes.get(e.community_id), "action": e.action, "target": e.target,
             "details": json.loads(e.details or "{}"), "address": e.address}
            for e in page["items"]
        ]
        return page
