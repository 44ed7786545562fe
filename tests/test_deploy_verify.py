"""The receiver side: verify() over real HTTP requests and directly."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from gitops.deploy import (
    BadBody,
    BadSignature,
    MissingHeader,
    ReplayCache,
    ReplayedDelivery,
    StaleTimestamp,
    signed_headers,
    verify,
)
from tests.deploy_fixtures import SECRET

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


# --- issue 9 item 1: everything the receiver acts on is signed -----------------------------------

def test_replay_with_a_fresh_delivery_id_fails_the_signature(receiver):
    """A captured delivery re-sent under a new X-Gitops-Delivery would dodge the replay cache:
    the delivery id is signed, so the altered capture is refused and nothing is deployed twice."""
    captured = signed_headers(SECRET, BODY, "d-captured")
    assert post(receiver.url, captured) == 200
    forged = {**captured, "X-Gitops-Delivery": "d-fresh-id"}
    assert post(receiver.url, forged) == 401
    assert len(receiver.accepted) == 1 and "does not match" in receiver.rejected[0]
    assert "d-fresh-id" not in receiver.seen  # a forged request burns no id


def test_changed_event_header_fails_the_signature():
    headers = signed_headers(SECRET, BODY, "d", now=1_000_000)
    headers["X-Gitops-Event"] = "alias.removed"
    with pytest.raises(BadSignature, match="delivery id and event"):
        verify(headers, BODY, SECRET, now=1_000_000)


def test_body_delivery_must_match_the_header():
    """Signed by the sender, yet the body names another delivery than the header."""
    body = json.dumps({"event": "alias.moved", "delivery": "d-body", "model": "chat"}).encode()
    with pytest.raises(BadBody, match="'delivery' is not the X-Gitops-Delivery"):
        verify(signed_headers(SECRET, body, "d-header"), body, SECRET)
    assert verify(signed_headers(SECRET, body, "d-body"), body, SECRET)["model"] == "chat"


def test_a_rejected_body_burns_no_delivery_id():
    seen = ReplayCache()
    body = b"[1]"
    with pytest.raises(BadBody):
        verify(signed_headers(SECRET, body, "d-1", now=100), body, SECRET, seen=seen, now=100)
    assert "d-1" not in seen


def test_the_old_sha256_scheme_is_refused_by_name():
    """A sender from before the v1 scheme signed only timestamp + "." + body: refused, saying why."""
    import hashlib
    import hmac

    old = hmac.new(SECRET.encode(), b"1000000." + BODY, hashlib.sha256).hexdigest()
    headers = {**signed_headers(SECRET, BODY, "d", now=1_000_000), "X-Gitops-Signature": f"sha256={old}"}
    with pytest.raises(BadSignature, match="scheme 'sha256', not 'v1'"):
        verify(headers, BODY, SECRET, now=1_000_000)


def _signed(timestamp: str, body: bytes, delivery: str = "d", event: str = "alias.moved") -> dict:
    """Headers for ``timestamp`` as-is, signed with the real secret (a sender gone wrong, or a
    receiver probed by someone holding the secret): verify must still give a verdict."""
    from gitops.deploy.signing import signature

    return {"X-Gitops-Timestamp": timestamp, "X-Gitops-Delivery": delivery, "X-Gitops-Event": event,
            "X-Gitops-Signature": signature(SECRET, timestamp, delivery, event, body)}


def test_hostile_input_gives_a_verdict_never_a_crash():
    from gitops.deploy import WebhookRejected
    from gitops.errors import DeployError

    with pytest.raises(DeployError, match="secret; it is empty"):
        verify(signed_headers(SECRET, BODY, "d"), BODY, "")
    # int() refuses 5,000 digits with ValueError: the timestamp is bounded before it is read
    with pytest.raises(WebhookRejected) as err:
        verify(_signed("9" * 5000, BODY), BODY, SECRET)
    assert err.value.status == 400 and "X-Gitops-Timestamp" in str(err.value)
    with pytest.raises(StaleTimestamp, match="is not Unix seconds"):
        verify(_signed("1" * 16, BODY), BODY, SECRET)
    with pytest.raises(MissingHeader, match="X-Gitops-Timestamp"):
        verify(_signed("١٢٣", BODY), BODY, SECRET)  # Arabic-Indic digits: isdigit(), yet not ASCII
    deep = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError
    with pytest.raises(BadBody, match="nests too deep"):
        verify(_signed(str(int(time.time())), deep), deep, SECRET)
    with pytest.raises(MissingHeader):
        verify({**signed_headers(SECRET, BODY, "d"), "X-Gitops-Delivery": "x" * 5000}, BODY, SECRET)


def test_signing_refuses_an_empty_secret_and_a_header_with_a_line_feed():
    from gitops.errors import DeployError

    with pytest.raises(DeployError, match="empty secret"):
        signed_headers("", BODY, "d")
    with pytest.raises(DeployError, match="X-Gitops-Delivery"):
        signed_headers(SECRET, BODY, "d\n1")
