"""Notices (通知): one's own notices and their read marks; the committee's dead letters; the grid
worker's printed list."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from timebank.core.extensions import db
from timebank.core.http import ListArgs, LocalDateTime, current_user, paginate
from timebank.core.openapi import for_any_login
from timebank.notices import messages
from timebank.notices import operations as ops
from timebank.notices.models import Notification
from timebank.people.operations import community_by_code

blp = Blueprint("notices", __name__, url_prefix="/api/v1",
                description="Notices (通知): one's own, with read marks; dead letters; the printed list.")


class NoticeOut(Schema):
    id = fields.Integer()
    event = fields.String()
    title = fields.Function(lambda n: str(messages.EVENT_LABELS.get(n.event, n.event)))
    text = fields.Function(messages.text)
    facts = fields.Function(messages.facts)
    created_at = LocalDateTime()
    read = fields.Function(lambda n: n.read_at is not None)
    read_at = LocalDateTime(allow_none=True)
    #: ``page``, ``sms`` or ``print``; ``status``: ``none``, ``pending``, ``sent``, ``delivered``, ``dead``.
    channel = fields.String()
    status = fields.String()


class NoticeList(Schema):
    items = fields.List(fields.Nested(NoticeOut))
    next_cursor = fields.String(allow_none=True)
    unread_count = fields.Integer()


class MyNoticesArgs(ListArgs):
    unread = fields.Boolean(load_default=False)


class MarkedOut(Schema):
    marked = fields.Integer()


class DeliveryOut(NoticeOut):
    community_id = fields.Integer()
    resident_id = fields.Integer(allow_none=True)
    user_id = fields.Integer(allow_none=True)
    household_id = fields.Integer(allow_none=True)
    attempts = fields.Integer()
    next_attempt_at = LocalDateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    dead_at = LocalDateTime(allow_none=True)
    delivered_at = LocalDateTime(allow_none=True)
    delivered_by_user_id = fields.Integer(allow_none=True)


class DeliveryList(Schema):
    items = fields.List(fields.Nested(DeliveryOut))
    next_cursor = fields.String(allow_none=True)


class CommunityArgs(ListArgs):
    community_code = fields.String(required=True)


class PrintArgs(Schema):
    community_code = fields.String(required=True)
    grid = fields.String(load_default=None, validate=validate.Length(1, 64))


class PrintedOut(Schema):
    id = fields.Integer()
    event = fields.String()
    text = fields.String()
    created_at = LocalDateTime()
    resident_id = fields.Integer()
    resident_name = fields.String()
    household_id = fields.Integer()
    household_name = fields.String()
    address = fields.String()
    grid = fields.String(allow_none=True)


class PrintList(Schema):
    items = fields.List(fields.Nested(PrintedOut))


@blp.route("/me/notifications")
class MyNotices(MethodView):
    @for_any_login
    @blp.arguments(MyNoticesArgs, location="query")
    @blp.response(200, NoticeList)
    def get(self, args):
        """The caller's notices, newest first (``unread=true``: only the unread ones), and how many are unread."""
        user = current_user()
        page = paginate(ops.my_notices(user, args["unread"]), Notification.id, args["limit"], args["cursor"],
                        descending=True)
        return {**page, "unread_count": ops.unread_count(user)}


@blp.route("/me/notifications/<int:notice_id>/read")
class MarkRead(MethodView):
    @for_any_login
    @blp.response(200, NoticeOut)
    def post(self, notice_id):
        """Mark one of the caller's notices read (marking it again changes nothing)."""
        return ops.mark_read(current_user(), notice_id)


@blp.route("/me/notifications/read-all")
class MarkAllRead(MethodView):
    @for_any_login
    @blp.response(200, MarkedOut)
    def post(self):
        """Mark every unread notice of the caller read; how many were marked."""
        return {"marked": ops.mark_all_read(current_user())}


@blp.route("/notifications/dead-letters")
class DeadLetters(MethodView):
    @blp.arguments(CommunityArgs, location="query")
    @blp.response(200, DeliveryList)
    def get(self, args):
        """Text messages that could not be sent (committee, supervisor), newest first, with the last error."""
        community = community_by_code(args["community_code"])
        return paginate(ops.dead_letters(current_user(), community), Notification.id, args["limit"],
                        args["cursor"], descending=True)


@blp.route("/notifications/<int:notice_id>/retry")
class Retry(MethodView):
    @blp.response(200, DeliveryOut)
    @blp.alt_response(409, description="notice_not_dead: only a dead letter is sent again")
    def post(self, notice_id):
        """Send a dead letter again (committee): the next run of ``send_notices`` tries it, with a fresh count."""
        return ops.retry(current_user(), notice_id)


@blp.route("/notifications/<int:notice_id>/print")
class PrintInstead(MethodView):
    @blp.response(200, DeliveryOut)
    @blp.alt_response(409, description="notice_not_dead, notice_not_printable (a notice to a staff login)")
    def post(self, notice_id):
        """Move a dead letter to the grid worker's printed list (committee; notices to residents)."""
        return ops.print_instead(current_user(), notice_id)


@blp.route("/notifications/print-list")
class Printed(MethodView):
    @blp.arguments(PrintArgs, location="query")
    @blp.response(200, PrintList)
    def get(self, args):
        """Notices to hand over on paper (residents without a phone), by grid and household (committee,
        grid worker, supervisor); ``grid`` narrows it to one grid."""
        community = community_by_code(args["community_code"])
        rows = db.session.execute(ops.print_list(current_user(), community, args["grid"])).all()
        return {"items": [{"id": n.id, "event": n.event, "text": messages.text(n), "created_at": n.created_at,
                           "resident_id": r.id, "resident_name": r.name, "household_id": h.id,
                           "household_name": h.name, "address": h.address, "grid": h.grid}
                          for n, r, h in rows]}


@blp.route("/notifications/<int:notice_id>/delivered")
class Delivered(MethodView):
    @blp.response(200, DeliveryOut)
    @blp.alt_response(409, description="notice_not_printed: the notice is not on the printed list")
    def post(self, notice_id):
        """The printed notice was handed over (grid worker, committee). Marking it again changes nothing."""
        return ops.mark_delivered(current_user(), notice_id)
