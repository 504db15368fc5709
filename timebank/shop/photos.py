"""Photos of goods (商品照片): checked, kept in the database and shown on the till and the goods list.

An upload is taken only when its first bytes are those of a JPEG, PNG or WebP image and its header
names a sensible size; the name and the type the browser sent are not trusted. (Pillow is not a
dependency of the project, so the image is not decoded: the header is read by hand, which is enough
to refuse a document, a script or a program sent as a "photo", and a picture so large that it would
choke the till's browser.) The photo is served with the type found here, ``nosniff`` (every
response), and an address that changes with its content, so browsers may keep it.

Plain functions: they flush and never commit.
"""

from __future__ import annotations

import hashlib
import struct

from flask import current_app
from sqlalchemy import select

from timebank.core.audit_log import record
from timebank.core.clock import utc_naive
from timebank.core.errors import DomainError, ValidationFailed
from timebank.core.extensions import db
from timebank.core.users import User
from timebank.shop.models import Item, ItemPhoto

#: Largest photo taken, in bytes (``TIMEBANK_PHOTO_MAX_BYTES``); a phone's photo is shrunk by the page
#: before it is sent.
MAX_BYTES = 2 * 1024 * 1024
#: Largest width or height, in pixels.
MAX_SIDE = 8000


class PhotoTooLarge(DomainError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class NotAnImage(ValidationFailed):
    code = "photo_invalid"


def max_bytes() -> int:
    return int(current_app.config.get("TIMEBANK_PHOTO_MAX_BYTES", MAX_BYTES))


def _png(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg(data: bytes) -> tuple[int, int] | None:
    if data[:3] != b"\xff\xd8\xff":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        # Start of frame (baseline, progressive, ...): height and width follow the precision byte.
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        if length < 2:
            return None
        at += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP" or len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def sniff(data: bytes) -> tuple[str, int, int]:
    """(content type, width, height) of a JPEG, PNG or WebP image; refuses anything else."""
    for content_type, read in (("image/jpeg", _jpeg), ("image/png", _png), ("image/webp", _webp)):
        size = read(data)
        if size is None:
            continue
        width, height = size
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise NotAnImage(f"The picture is {width}×{height} pixels; at most {MAX_SIDE} a side.",
                             errors={"photo": [f"At most {MAX_SIDE} pixels a side."]})
        return content_type, width, height
    raise NotAnImage("This file is not a JPEG, PNG or WebP picture.",
                     errors={"photo": ["Not a JPEG, PNG or WebP picture."]})


def set_photo(item: Item, user: User, data: bytes) -> ItemPhoto:
    """Keep ``data`` as the item's photo (replacing the one before)."""
    if not data:
        raise NotAnImage("No picture was sent.", errors={"photo": ["Choose a picture."]})
    if len(data) > max_bytes():
        raise PhotoTooLarge(f"The picture has {len(data)} bytes; at most {max_bytes()}.")
    content_type, width, height = sniff(data)
    photo = db.session.get(ItemPhoto, item.id)
    if photo is None:
        photo = ItemPhoto(item_id=item.id)
        db.session.add(photo)
    photo.content_type, photo.data, photo.size_bytes = content_type, data, len(data)
    photo.width, photo.height = width, height
    photo.sha256 = hashlib.sha256(data).hexdigest()
    photo.actor, photo.uploaded_at = user.actor, utc_naive()
    record("item.photo", user=user, target=f"item:{item.id}", community_id=item.community_id,
           content_type=content_type, size_bytes=len(data), sha256=photo.sha256)
    db.session.flush()
    return photo


def remove_photo(item: Item, user: User) -> bool:
    photo = db.session.get(ItemPhoto, item.id)
    if photo is None:
        return False
    db.session.delete(photo)
    record("item.photo_removed", user=user, target=f"item:{item.id}", community_id=item.community_id,
           sha256=photo.sha256)
    db.session.flush()
    return True


def photo_versions(item_ids) -> dict[int, str]:
    """{item id: a short version of its photo} for the items that have one (their photo addresses)."""
    ids = list(item_ids)
    if not ids:
        return {}
    return {item_id: sha[:16] for item_id, sha in db.session.execute(
        select(ItemPhoto.item_id, ItemPhoto.sha256).where(ItemPhoto.item_id.in_(ids))).all()}
