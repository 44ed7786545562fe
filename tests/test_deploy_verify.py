"""The receiver side: verify() over real HTTP requests and directly."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from gitops.deploy import (BadBody, BadSignature, MissingHeader, ReplayCache, ReplayedDelivery, StaleTimestamp,
                           signed_headers, verify)
from tests.deploy_fixtures import SECRET, receiver  # noqa: F401

BODY = json.dumps({"model": "chat", "alias": "production", "version": "v3"}).encode()


def post(url: str, headers: dict, body: bytes = BODY) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_good_delivery_is_accepted_over_http(receiver):
    assert post(receiver.url, signed_headers(SECRET, BODY, "d-1")) == 200
    assert receiver.accepted == [json.loads(BODY)]


def test_bad_signature_rejected_over_http(receiver):
    headers = signed_headers("not-the-secret", BODY, "d-2")
    assert post(receiver.url, headers) == 401
    assert receiver.accepted == [] and "does not match" in receiver.rejected[0]


def test_altered_body_rejected(receiver):
    headers = signed_headers(SECRET, BODY, "d-3")
    assert post(receiver.url, headers, BODY.replace(b"v3", b"v9")) == 401


def test_stale_timestamp_rejected_over_http(receiver):
    headers = signed_headers(SECRET, BODY, "d-4", now=time.time() - 3600)
    assert post(receiver.url, headers) == 401
    assert re.search(r"the webhook timestamp is 360[01] s old", receiver.rejected[0])


def test_replay_rejected_over_http(receiver):
    headers = signed_headers(SECRET, BODY, "d-5")
    assert post(receiver.url, headers) == 200
    assert post(receiver.url, headers) == 409
    assert "already received" in receiver.rejected[0] and len(receiver.accepted) == 1


def test_future_timestamp_rejected():
    headers = signed_headers(SECRET, BODY, "d", now=1_000_000 + 900)
    with pytest.raises(StaleTimestamp, match="in the future"):
        verify(headers, BODY, SECRET, now=1_000_000)


def test_tolerance_edges():
    headers = signed_headers(SECRET, BODY, "d", now=1_000_000)
    assert verify(headers, BODY, SECRET, now=1_000_000 + 300)["version"] == "v3"
    with pytest.raises(StaleTimestamp):
        verify(headers, BODY, SECRET, now=1_000_000 + 301)


def test_headers_are_case_insensitive_and_required():
    headers = {k.lower(): v for k, v in signed_headers(SECRET, BODY, "d").items()}
    assert verify(headers, BODY, SECRET)["model"] == "chat"
    del headers["x-gitops-delivery"]
    with pytest.raises(MissingHeader, match="X-Gitops-Delivery"):
        verify(headers, BODY, SECRET)


def test_tampered_timestamp_fails_the_signature():
    headers = signed_headers(SECRET, BODY, "d", now=1_000_000)
    headers["X-Gitops-Timestamp"] = "1000100"
    with pytest.raises(BadSignature):
        verify(headers, BODY, SECRET, now=1_000_000)


def test_replay_cache_records_only_verified_and_expires():
    seen = ReplayCache(ttl_s=10)
    bad = signed_headers("wrong", BODY, "same-id", now=100)
    with pytest.raises(BadSignature):
        verify(bad, BODY, SECRET, seen=seen, now=100)
    assert "same-id" not in seen  # a forged request cannot burn a real delivery id
    good = signed_headers(SECRET, BODY, "same-id", now=100)
    verify(good, BODY, SECRET, seen=seen, now=100)
    with pytest.raises(ReplayedDelivery):
        verify(good, BODY, SECRET, seen=seen, now=101)
    assert seen.add("same-id", now=200)  # expired after ttl


def test_body_must_be_a_json_object():
    body = b"[1, 2]"
    with pytest.raises(BadBody):
        verify(signed_headers(SECRET, body, "d"), body, SECRET)
