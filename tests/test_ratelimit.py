"""One rate limit per Exotel account, shared through Redis by every worker process."""

from __future__ import annotations

import uuid

import pytest
import redis

from django_exotel_sms import ratelimit

REDIS_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def shared_limit(settings):
    redis.Redis.from_url(REDIS_URL).flushdb()
    sid = f"acct-{uuid.uuid4().hex[:8]}"  # a fresh key space per test
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "ACCOUNT_SID": sid,
        "RATE_LIMIT": "3/minute",
        "GET_RATE_LIMIT": "2/minute",
        "RATE_LIMIT_STORAGE": REDIS_URL,
        "ACCOUNTS": {
            "alias": {"ACCOUNT_SID": sid, "API_KEY": "k", "API_TOKEN": "t"},
            "other": {"ACCOUNT_SID": sid + "-other", "API_KEY": "k", "API_TOKEN": "t"},
        },
    }
    ratelimit.reset()
    yield
    ratelimit.reset()
    redis.Redis.from_url(REDIS_URL).flushdb()


def test_limit_is_enforced_across_processes(shared_limit):
    assert all(ratelimit.acquire("default", "post", max_wait=0) for _ in range(3))
    assert ratelimit.acquire("default", "post", max_wait=0.05) is False
    # A new process has no local state: forget ours, the window lives in Redis.
    ratelimit._limiters.clear()
    assert ratelimit.acquire("default", "post", max_wait=0.05) is False


def test_aliases_of_one_account_share_a_limit_and_others_do_not(shared_limit):
    assert all(ratelimit.acquire("default", "post", max_wait=0) for _ in range(3))
    assert ratelimit.acquire("alias", "post", max_wait=0.05) is False
    assert ratelimit.acquire("other", "post", max_wait=0) is True


def test_get_and_post_limits_are_separate(shared_limit):
    assert all(ratelimit.acquire("default", "post", max_wait=0) for _ in range(3))
    assert ratelimit.acquire("default", "get", max_wait=0) is True
    assert ratelimit.acquire("default", "get", max_wait=0) is True
    assert ratelimit.acquire("default", "get", max_wait=0.05) is False


def test_without_storage_the_limit_is_per_process(settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RATE_LIMIT": "1/minute"}
    ratelimit.reset()
    assert ratelimit.acquire("default", "post", max_wait=0) is True
    assert ratelimit.acquire("default", "post", max_wait=0.05) is False
