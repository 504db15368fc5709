"""The committee's logins page (账号), password slips, and everyone's own password page.

* ``/committee/logins``: the community's logins with role, person and state (the committee and
  supervisors see it; an admin picks the community with ``?community=``). The committee makes grid
  worker and clerk logins with the person's phone, deactivates logins and resets passwords; an admin
  also makes committee and supervisor logins.
* A reset shows a printable slip: the person's name, the username, the one-time password and when it
  stops working. It is shown once (only its hash is kept); a lost slip is another reset.
* ``/committee/households/<id>/logins``: a household's people and their logins, with "reset
  password" for each (grid workers too); the household roster links here.
* ``/me/password``: choose a new password (every login). A login opened with a one-time password is
  sent here before any other page (:func:`send_to_password_page`).

The rules are :mod:`timebank.people.logins`' and :func:`timebank.people.operations.create_user`'s,
the same as the API's; every change is written to the audit log.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from timebank.core.audit_log import record
from timebank.core.auth import set_one_time_password
from timebank.core.errors import DomainError, ValidationFailed
from timebank.core.extensions import db
from timebank.core.pages import (
    form_done,
    login_required,
    remember_outcome,
    replay_form,
    roles_required,
    safe_next,
    take_form_key,
)
from timebank.core.policy import require_community
from timebank.core.users import User
from timebank.people import logins
from timebank.people import operations as people
from timebank.people import staff_pages as staff
from timebank.people.models import Household, Resident
from timebank.people.staff_pages import me, refuse_supervisor_writes

bp = Blueprint("web_logins", __name__)


@bp.before_request
def _supervisors_read():
    """Supervisors see the logins and change none; their own password is theirs to change."""
    if request.endpoint != "web_logins.my_password":
        return refuse_supervisor_writes()
    return None


ROLE_LABELS = {
    "admin": _l("Administrator"),
    "committee": _l("Committee member"),
    "grid_worker": _l("Grid worker"),
    "clerk": _l("Supermarket clerk"),
    "supervisor": _l("Supervisor"),
    "resident": _l("Resident"),
}

#: Who opens the logins page (admin always); supervisors read it: made-up staff show here.
READERS = ("committee", "supervisor")


def _roles_made_by(user) -> list[str]:
    if user.role == "admin":
        return ["committee", "grid_worker", "clerk", "supervisor"]
    if user.role == "committee":
        return ["grid_worker", "clerk"]
    return []


def _refused(exc: DomainError, back: str):
    from flask import flash

    db.session.rollback()
    flash(staff.message(exc), "error")
    return redirect(back)


def _slip(login: User, password: str, expires_at, name: str | None, back: str, created: bool = False):
    """Render the slip once; a second sending of the same form is told so (and shown no password)."""
    remember_outcome(location=back, message=_("A one-time password was made for %(user)s; if the slip was lost, "
                                              "reset the password again.", user=login.username),
                     category="info")
    return render_template("committee/password_slip.html", login=login, password=password, expires_at=expires_at,
                           name=name, back=back, created=created, place=login.community)


@bp.route("/committee/logins", methods=["GET", "POST"])
@roles_required(*READERS)
def logins_page():
    place = staff.place()
    user = me()
    back = url_for(".logins_page", community=place.code if user.role == "admin" else None)
    if request.method == "POST":
        form = request.form
        try:
            if not take_form_key():
                return replay_form(back)
            role = form.get("role") or ""
            if role not in _roles_made_by(user):
                people.may_create_user(user, role, place.id)
                raise ValidationFailed(errors={"role": [_("Choose a role from the list.")]})
            username = (form.get("username") or "").strip()[:64]
            if not username:
                raise ValidationFailed(errors={"username": [_("A login has a username.")]})
            phone = (form.get("phone") or "").strip()[:32] or None
            if phone is None:
                raise ValidationFailed(errors={"phone": [_("Staff are people: give the person's phone number.")]})
            people.may_create_user(user, role, place.id)
            created = people.create_user(username, secrets.token_urlsafe(24), role, community_id=place.id,
                                         phone=phone)
            password, expires_at = set_one_time_password(created)
            record("user.create", user=user, target=f"user:{created.id}", community_id=place.id,
                   username=created.username, role=created.role, resident_id=created.resident_id,
                   phone=created.phone, person=True, via="web")
        except DomainError as exc:
            return _refused(exc, back)
        return _slip(created, password, expires_at, created.resident.name if created.resident else None, back,
                     created=True)
    rows = db.session.execute(logins.logins_of(place.id).order_by(User.active.desc(), User.role, User.username)
                              .limit(500)).scalars().all()
    return render_template("committee/logins.html", place=place, rows=rows, roles=_roles_made_by(user),
                           ROLE_LABELS=ROLE_LABELS, mask_phone=logins.mask_phone, can_manage=_can_manage)


def _can_manage(login: User, reset: bool = False) -> bool:
    try:
        logins.may_manage(me(), login, reset=reset)
    except DomainError:
        return False
    return login.id != me().id


def _page_login(user_id: int) -> User:
    try:
        return logins.visible_login(me(), user_id)
    except DomainError:
        abort(404)


@bp.post("/committee/logins/<int:user_id>/deactivate")
@roles_required("committee")
def deactivate(user_id: int):
    user = me()
    target = _page_login(user_id)
    back = url_for(".logins_page", community=target.community.code if user.role == "admin" and target.community
                   else None)

    def act():
        logins.deactivate(user, target)
        record("user.deactivate", user=user, target=f"user:{target.id}", community_id=target.community_id,
               username=target.username, role=target.role, via="web")
        return target

    return staff.write_once(act, lambda t: _("The login %(user)s is deactivated; it stopped working at once.",
                                             user=t.username), back)


@bp.post("/committee/logins/<int:user_id>/reset-password")
@roles_required("committee", "grid_worker")
def reset_login(user_id: int):
    user = me()
    target = _page_login(user_id)
    back = safe_next(request.form.get("back"), url_for(".logins_page"))
    try:
        if not take_form_key():
            return replay_form(back)
        password, expires_at = logins.reset_password(user, target)
        record("user.reset_password", user=user, target=f"user:{target.id}", community_id=target.community_id,
               username=target.username, expires_at=expires_at, via="web")
    except DomainError as exc:
        return _refused(exc, back)
    return _slip(target, password, expires_at, target.resident.name if target.resident else None, back)


@bp.get("/committee/households/<int:household_id>/logins")
@roles_required("committee", "grid_worker", "supervisor")
def household_logins(household_id: int):
    household = db.session.get(Household, household_id)
    if household is None:
        abort(404)
    try:
        require_community(me(), household.community_id)
    except DomainError:
        abort(404)
    members = [(resident, logins.resident_login(resident)) for resident in household.members]
    return render_template("committee/household_logins.html", household=household, members=members,
                           can_reset=me().role in ("admin", "committee", "grid_worker"))


@bp.post("/committee/residents/<int:resident_id>/reset-password")
@roles_required("committee", "grid_worker")
def reset_resident(resident_id: int):
    user = me()
    resident = db.session.get(Resident, resident_id)
    if resident is None:
        abort(404)
    try:
        require_community(user, resident.household.community_id)
    except DomainError:
        abort(404)
    back = url_for(".household_logins", household_id=resident.household_id)
    try:
        if not take_form_key():
            return replay_form(back)
        login, password, expires_at, created = logins.reset_resident_password(user, resident)
        if created:
            record("user.create", user=user, target=f"user:{login.id}", community_id=login.community_id,
                   username=login.username, role="resident", resident_id=resident.id, via="reset_password")
        record("user.reset_password", user=user, target=f"user:{login.id}", community_id=login.community_id,
               username=login.username, resident_id=resident.id, expires_at=expires_at, via="web")
    except DomainError as exc:
        return _refused(exc, back)
    return _slip(login, password, expires_at, resident.name, back, created=created)


@bp.route("/me/password", methods=["GET", "POST"])
@login_required
def my_password():
    user = me()
    if request.method == "POST":
        form = request.form
        back = url_for(".my_password")
        try:
            if not take_form_key():
                return replay_form(back)
            new = form.get("new_password") or ""
            if new != (form.get("repeat_password") or ""):
                raise ValidationFailed(errors={"repeat_password": [_("The two new passwords differ.")]})
            logins.change_password(user, (form.get("old_password") or "")[:256], new[:256])
            record("user.password_change", user=user, target=f"user:{user.id}", via="web")
        except DomainError as exc:
            return _refused(exc, back)
        home = url_for("web_resident.home") if user.role == "resident" else url_for("web.home")
        return form_done(home, _("Your new password is set."))
    return render_template("me_password.html", required=bool(user.password_change_required))


#: What a login that must choose a new password may still open.
_OPEN_WHILE_CHANGING = {"web_logins.my_password", "web_auth.login", "web_auth.logout", "web.set_language",
                        "web.healthz", "static"}


def send_to_password_page():
    """A ``before_request`` hook: a page session of a login opened with a one-time password sees the
    "choose a new password" page before anything else (the API answers 403, see logins_api)."""
    if request.path.startswith("/api/") or request.endpoint in _OPEN_WHILE_CHANGING:
        return None
    if current_user.is_authenticated and current_user.password_change_required:
        return redirect(url_for("web_logins.my_password"))
    return None


def init_app(app) -> None:
    app.register_blueprint(bp)
    app.before_request(send_to_password_page)
    app.jinja_env.globals.setdefault("ROLE_LABELS", ROLE_LABELS)

