"""The roster import (花名册导入): a committee's Excel roster, with opening balances, in one go."""

from __future__ import annotations

import io

URL = "/api/v1/imports/households?community_code=hongxing"
HEADER = "户名,地址,网格,标签,姓名,手机,出生年份,期初积分\n"
ROSTER = HEADER + (
    "张家,幸福路1号,1,绿,张三,13800000001,1956,120\n"
    "张家,幸福路1号,1,绿,李四,13800000002,1958,\n"
    "王家,幸福路2号,2,红,王五,,1940,30\n"
)


def _post(world, body, user="committee", content_type="text/csv; charset=utf-8", query="", **headers):
    return world.client.post(URL + query, data=body, content_type=content_type,
                             headers={**world.headers(user), **headers})


def test_smoke(world):
    world.user("committee", "committee")
    r = _post(world, ROSTER.encode(), query="&dry_run=true")
    assert r.status_code == 200, r.get_json()
    print(r.get_json())
    r = _post(world, ROSTER.encode())
    assert r.status_code == 201, r.get_json()
    print(r.get_json())
    r = _post(world, ROSTER.encode())
    assert r.status_code == 201, r.get_json()
    print(r.get_json())
