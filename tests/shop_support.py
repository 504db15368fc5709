"""A community with a supermarket: goods with barcodes and stock, one household with points, one without."""

from __future__ import annotations

import struct
import zlib

from earning_support import build_town


def shop_town(world, points: int = 100):
    t = build_town(world)
    t.items = {}
    for sku, name, price, barcode in (("soap", "香皂", 3, "6901111000011"), ("oil", "食用油", 45, "6901111000028"),
                                      ("tissue", "纸巾", 8, "6901111000035")):
        r = world.call("POST", "/api/v1/items", "clerk", json={
            "community_code": "hongxing", "sku": sku, "name": name, "price_points": price, "barcode": barcode})
        assert r.status_code == 201, r.get_json()
        t.items[sku] = r.get_json()["id"]
        r = world.call("POST", "/api/v1/stock-movements", "clerk", json={
            "item_id": t.items[sku], "quantity": 10, "reason": "donation", "donor": "红星粮油店"})
        assert r.status_code == 201, r.get_json()
    world.grant(t.h1, points)
    with world.app.app_context():
        from timebank.core.extensions import db
        from timebank.people.models import Household

        t.card1 = db.session.get(Household, t.h1).member_code
        t.card2 = db.session.get(Household, t.h2).member_code
    return t


def png_bytes(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny) PNG picture."""
    raw = b"".join(b"\x00" + b"\x10\x80\xf0" * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
