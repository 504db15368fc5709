"""Hours between deployments (通存通兑): trusted issuers, hour vouchers, clearing (docs/federation.md)."""

from __future__ import annotations

import io

import segno
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from timebank.core.http import LocalDateTime, current_user, idempotent
from timebank.core.policy import require_role
from timebank.federation import operations as ops
from timebank.federation import voucher as fmt

blp = Blueprint("federation", __name__, url_prefix="/api/v1",
                description="Hours between deployments: signed vouchers, trusted issuers, clearing "
                            "(docs/federation.md).")

#: The operations check the origin exactly (:func:`timebank.federation.voucher.check_origin`); this pattern
#: (an ECMA one, for the OpenAPI document) refuses most mistakes early.
ORIGIN = validate.Regexp("^" + fmt.ORIGIN_RE.pattern + "$", error="1 to 100 of A-Z a-z 0-9 . _ : / -")


class IssuerIn(Schema):
    origin = fields.String(required=True, validate=ORIGIN,
                           metadata={"description": "the other deployment's TIMEBANK_ORIGIN"})
    public_key = fields.String(required=True, validate=validate.Length(1, 64), metadata={
        "description": "base64 of its raw 32-byte Ed25519 key, as its GET /api/v1/ledger/public-key shows"})


class IssuerOut(Schema):
    id = fields.Integer()
    origin = fields.String()
    public_key = fields.String()
    key_id = fields.String(metadata={"description": "signed-note key id (8 hex) of this key under this origin"})
    created_at = LocalDateTime()


class IssuerList(Schema):
    items = fields.List(fields.Nested(IssuerOut))


class VoucherIn(Schema):
    resident_id = fields.Integer(required=True)
    minutes = fields.Integer(required=True, validate=validate.Range(1, 100_000))
    audience = fields.String(load_default=None, validate=ORIGIN, metadata={
        "description": "origin of the deployment where it will be redeemed; may be left out when this "
                       "deployment trusts exactly one"})
    expires_in_days = fields.Integer(load_default=None, validate=validate.Range(1, ops.MAX_DAYS), metadata={
        "description": "default TIMEBANK_VOUCHER_DAYS (90)"})


class VoucherOut(Schema):
    voucher_id = fields.String()
    voucher = fields.String(attribute="text", metadata={"description": "the signed text (docs/federation.md)"})
    issuer = fields.Function(lambda v: fmt.parse(v.text).issuer)
    audience = fields.String()
    resident_id = fields.Integer()
    minutes = fields.Integer()
    status = fields.String(metadata={"description": "issued | redeemed (listed by the audience's statement) | "
                                                    "expired | cancelled (minutes back)"})
    issued_at = LocalDateTime()
    expires_at = LocalDateTime()
    transaction_id = fields.Integer()
    redeemed_at = LocalDateTime(allow_none=True, metadata={"description": "as of the statement that listed it"})
    returned_at = LocalDateTime(allow_none=True)
    return_transaction_id = fields.Integer(allow_none=True)
    qr_svg_url = fields.Function(lambda v: f"/api/v1/hours/vouchers/{v.voucher_id}/qr.svg")


class CancelIn(Schema):
    reason = fields.String(required=True, validate=validate.Length(1, 500))


class RedeemIn(Schema):
    voucher = fields.String(required=True, validate=validate.Length(1, 4000))
    resident_id = fields.Integer(required=True)


class RedeemOut(Schema):
    id = fields.Integer()
    voucher_id = fields.String()
    issuer = fields.String()
    resident_id = fields.Integer()
    minutes = fields.Integer()
    #: The part over the stored-hours cap, which went to the community pool.
    to_pool_minutes = fields.Integer()
    transaction_id = fields.Integer()
    issued_at = LocalDateTime()
    expires_at = LocalDateTime()
    redeemed_at = LocalDateTime()


class ClearingQuery(Schema):
    origin = fields.String(load_default=None, validate=ORIGIN)


class RedeemedStatementQuery(Schema):
    origin = fields.String(required=True, validate=ORIGIN, metadata={"description": "the issuer it is for"})


class RedeemedStatementOut(Schema):
    statement = fields.String(metadata={"description": "signed text, format in docs/federation.md"})


class RedeemedStatementIn(Schema):
    statement = fields.String(required=True, validate=validate.Length(1, 2_000_000))


class Discrepancy(Schema):
    voucher_id = fields.String()
    minutes = fields.Integer()
    problem = fields.String()


class RedeemedStatementTaken(Schema):
    origin = fields.String()
    as_of = LocalDateTime()
    vouchers = fields.Integer(metadata={"description": "how many it lists"})
    newly_redeemed = fields.List(fields.String(), metadata={"description": "vouchers now known redeemed"})
    discrepancies = fields.List(fields.Nested(Discrepancy))


class ClearingVoucher(Schema):
    direction = fields.String(metadata={"description": "sent | received"})
    voucher_id = fields.String()
    minutes = fields.Integer()
    status = fields.String(metadata={"description": "issued | expired | cancelled | redeemed"})
    issued_at = LocalDateTime()
    expires_at = LocalDateTime()
    at = LocalDateTime(metadata={"description": "issued, given back or redeemed at"})


class ClearingItem(Schema):
    origin = fields.String()
    sent_minutes = fields.Integer(metadata={"description": "vouchers issued to it, not given back"})
    received_minutes = fields.Integer(metadata={"description": "its vouchers redeemed here"})
    net_minutes = fields.Integer(metadata={"description": "received - sent: positive, it owes us"})
    outstanding_minutes = fields.Integer(metadata={"description": "sent and not yet expired"})
    confirmed_redeemed_minutes = fields.Integer(metadata={"description": "sent and listed by its statements"})
    statement_as_of = LocalDateTime(allow_none=True, metadata={"description": "its newest statement's time"})
    vouchers_sent = fields.Integer()
    vouchers_received = fields.Integer()
    balance_minutes = fields.Integer(metadata={"description": "the clearing account's balance (= -net)"})
    vouchers = fields.List(fields.Nested(ClearingVoucher), metadata={"description": "with ?origin= only"})


class ClearingOut(Schema):
    origin = fields.String(metadata={"description": "this deployment's origin"})
    items = fields.List(fields.Nested(ClearingItem))


@blp.route("/federation/issuers")
class Issuers(MethodView):
    @blp.response(200, IssuerList)
    @blp.alt_response(403, description="forbidden: admin only")
    def get(self):
        """The other deployments' keys this one trusts (admin)."""
        require_role(current_user())  # admin only
        return {"items": ops.trusted_issuers()}

    @blp.arguments(IssuerIn)
    @blp.response(201, IssuerOut)
    @blp.alt_response(200, schema=IssuerOut, description="this key of this origin was trusted already")
    @blp.alt_response(403, description="forbidden: admin only")
    def post(self, body):
        """Trust another deployment (admin): its origin and the key that signs its vouchers. Its vouchers
        addressed here can then be redeemed, and vouchers can be issued to it."""
        row, created = ops.trust_issuer(current_user(), body["origin"], body["public_key"])
        return row, 201 if created else 200


@blp.route("/hours/vouchers")
class Vouchers(MethodView):
    @blp.arguments(VoucherIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, VoucherOut)
    @blp.alt_response(403, description="forbidden: a resident issues only for themselves; staff of the "
                                       "resident's community for them")
    @blp.alt_response(409, description="insufficient_hours, resident_inactive")
    def post(self, body):
        """Issue an hour voucher: the minutes leave the resident for the clearing account of the
        deployment where it will be redeemed; ``voucher`` is the signed text (also as a QR code)."""
        return ops.issue_voucher(current_user(), **body)


@blp.route("/hours/vouchers/<voucher_id>")
class VoucherOne(MethodView):
    @blp.response(200, VoucherOut)
    def get(self, voucher_id):
        """A voucher issued here (its resident; staff of their community)."""
        return ops.visible_voucher(current_user(), voucher_id)


@blp.route("/hours/vouchers/<voucher_id>/qr.svg")
class VoucherQr(MethodView):
    @blp.doc(responses={"200": {"description": "SVG image", "content": {"image/svg+xml": {}}}})
    def get(self, voucher_id):
        """The voucher's whole text as a QR code (SVG), for paper."""
        row = ops.visible_voucher(current_user(), voucher_id)
        buffer = io.BytesIO()
        segno.make(row.text, error="m").save(buffer, kind="svg", scale=4, border=4, title="时间券 voucher")
        return Response(buffer.getvalue(), mimetype="image/svg+xml")


@blp.route("/hours/vouchers/<voucher_id>/cancel")
class VoucherCancel(MethodView):
    @blp.arguments(CancelIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(200, VoucherOut)
    @blp.alt_response(403, description="forbidden: committee of the resident's community; self_dealing: "
                                       "a voucher of one's own household")
    @blp.alt_response(409, description="voucher_not_outstanding: expired or cancelled already")
    def post(self, body, voucher_id):
        """Cancel an issued voucher that was not redeemed (committee): the minutes go back to the resident
        at once. Only for a voucher that never left, or that the receiver confirmed unredeemed."""
        user = current_user()
        return ops.cancel_voucher(user, ops.visible_voucher(user, voucher_id), body["reason"])


@blp.route("/hours/vouchers/redeem")
class VoucherRedeem(MethodView):
    @blp.arguments(RedeemIn)
    @idempotent  # outside @blp.response, so it stores the serialized response
    @blp.response(201, RedeemOut)
    @blp.alt_response(403, description="forbidden: a resident redeems only for themselves; staff of the "
                                       "resident's community for them")
    @blp.alt_response(409, description="voucher_used: redeemed here already")
    @blp.alt_response(410, description="voucher_expired")
    @blp.alt_response(422, description="voucher_invalid (form, signature, addressed elsewhere), "
                                       "voucher_untrusted, voucher_wrong_person")
    def post(self, body):
        """Redeem another deployment's voucher: the minutes go to the resident it is made out to, from the
        clearing account of its issuer. Once per voucher."""
        return ops.redeem_voucher(current_user(), body["voucher"], body["resident_id"])


@blp.route("/federation/clearing")
class Clearing(MethodView):
    @blp.arguments(ClearingQuery, location="query")
    @blp.response(200, ClearingOut)
    @blp.alt_response(403, description="forbidden: admin only")
    def get(self, args):
        """Per counterparty deployment: minutes sent, received and the net (admin)."""
        return ops.clearing_report(current_user(), args["origin"])


@blp.route("/federation/statement")
class Statement(MethodView):
    @blp.arguments(RedeemedStatementQuery, location="query")
    @blp.response(200, RedeemedStatementOut)
    @blp.alt_response(403, description="forbidden: admin only")
    @blp.alt_response(404, description="not_found: not a counterparty, or no signing key yet")
    def get(self, args):
        """This deployment's signed statement for an issuer: every voucher of theirs redeemed here, as of
        now (admin). The issuer's admin posts it to their ``/federation/statements``."""
        return {"statement": ops.statement_for(current_user(), args["origin"])}


@blp.route("/federation/statements")
class Statements(MethodView):
    @blp.arguments(RedeemedStatementIn)
    @blp.response(200, RedeemedStatementTaken)
    @blp.alt_response(403, description="forbidden: admin only")
    @blp.alt_response(422, description="statement_invalid, statement_untrusted")
    def post(self, body):
        """Take a counterparty's signed statement of the vouchers of ours it redeemed (admin): they become
        ``redeemed``, and expired vouchers it does not list can give their minutes back."""
        return ops.take_statement(current_user(), body["statement"])
