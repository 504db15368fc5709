"""Rate-limit counters shared through Redis: two worker processes count login attempts together.

Flask-Limiter's ``limiter`` is one object per process, so two apps in one process would share its
storage whatever the configuration; the workers here are therefore two separate Python processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

REDIS_URL = "redis://127.0.0.1:6379"

_WORKER = r"""
import json, os, sys
from timebank import create_app

config = {"TESTING": True, "SECRET_KEY": "test-secret", "TIMEBANK_CHEAP_PASSWORD_HASHING": True,
          "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": True,
          "SQLALCHEMY_DATABASE_URI": os.environ["DB_URI"], "INSTANCE_PATH": os.environ["TIMEBANK_INSTANCE_PATH"]}
if os.environ.get("KEY_PREFIX"):
    config["RATELIMIT_KEY_PREFIX"] = os.environ["KEY_PREFIX"]
app = create_app(config)
client = app.test_client()
out = []
for _ in range(int(sys.argv[1])):
    r = client.post("/api/v1/auth/token", json={"username": "admin", "password": "wrong-password"})
    out.append({"status": r.status_code, "retry_after": r.headers.get("Retry-After"),
                "error": (r.get_json() or {}).get("error"), "mimetype": r.mimetype})
print(json.dumps(out))
"""


@pytest.fixture
def redis_prefix():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis does not answer at {REDIS_URL}: {exc}")
    prefix = f"tbtest-{uuid.uuid4().hex}"
    yield prefix
    # Remove only this run's counters.
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)
    client.close()


def _worker(db_uri, instance, attempts, storage_url=None, prefix=None) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIMEBANK_")}
    env.update(DB_URI=db_uri, TIMEBANK_INSTANCE_PATH=str(instance))
    if storage_url:
        env["TIMEBANK_RATELIMIT_STORAGE_URL"] = storage_url  # the documented variable
    if prefix:
        env["KEY_PREFIX"] = prefix
    done = subprocess.run([sys.executable, "-c", _WORKER, str(attempts)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_login_limit_is_shared_by_workers_through_redis(world, db_uri, tmp_path, redis_prefix):
    first = _worker(db_uri, tmp_path / "w1", 6, REDIS_URL, redis_prefix)
    second = _worker(db_uri, tmp_path / "w2", 5, REDIS_URL, redis_prefix)
    assert [r["status"] for r in first] == [401] * 6
    assert [r["status"] for r in second] == [401] * 4 + [429]
    refused = second[-1]
    assert refused["error"] == "rate_limited" and refused["mimetype"] == "application/problem+json"
    assert 0 < int(refused["retry_after"]) <= 60
    # Counters live under this run's prefix only.
    import redis

    keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(match=f"*{redis_prefix}*"))
    assert keys


@pytest.mark.slow
def test_without_shared_storage_each_worker_counts_alone(world, db_uri, tmp_path):
    """The control: in-memory counters are per process, which is why production needs Redis."""
    first = _worker(db_uri, tmp_path / "w1", 6)
    second = _worker(db_uri, tmp_path / "w2", 5)
    assert [r["status"] for r in first + second] == [401] * 11
