"""Plain HTTP requests (deploy webhooks, chat notifications, the eval judge, the demo's and the
tests' calls to a local ``gitops serve``), through ``requests``.

The one border where HTTP failures become our errors: a connection failure or a timeout becomes
:class:`HttpUnreachable` (a :class:`DeployError` that callers may retry); any HTTP status comes back
as an :class:`HttpResponse` for the caller to judge. Messages name the host only, never the full
URL, because webhook URLs (Slack's, for one) carry their secret in the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from gitops.errors import DeployError

MAX_GET_TEXT = 1024 * 1024  # a GET's body is parsed (a model list), so more is kept than a POST's


class HttpUnreachable(DeployError):
    """The request got no HTTP answer: connection refused, DNS failure, TLS failure or a timeout."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass
class HttpResponse:
    status: int
    text: str
    headers: dict[str, str]
    reason: str = ""

    def header(self, name: str, default: str = "") -> str:
        """The value of header ``name``, whatever its case (HTTP header names are case-insensitive)."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), default)


def host_of(url: str) -> str:
    """``host[:port]`` of ``url``, without any user:password part (``url`` is never echoed whole: it
    may carry a token; one that does not parse, ``http://[::1``, reads as "an invalid URL")."""
    try:
        netloc = urlparse(url).netloc
    except ValueError:
        return "an invalid URL"
    return netloc.rsplit("@", 1)[-1] or "an invalid URL"


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float, *, max_text: int = 500) -> HttpResponse:
    """POST ``body`` to ``url`` and return the response, whatever its status.

    Redirects are not followed: a redirected POST turns into a GET (and a signed body must reach
    the URL configured), so a 3xx comes back to the caller as a failure to report. ``max_text``
    caps the text kept: a webhook's answer only ever feeds an error message; a caller that parses
    the answer (a completion) asks for more, at most :data:`MAX_GET_TEXT`.
    """
    return _request("POST", url, headers, timeout_s, min(max_text, MAX_GET_TEXT), data=body)


def get(url: str, headers: dict[str, str], timeout_s: float) -> HttpResponse:
    """GET ``url`` and return the response, whatever its status (no redirects followed: a header
    carrying a token must reach only the host configured). Errors as in :func:`post`."""
    return _request("GET", url, headers, timeout_s, MAX_GET_TEXT)


def _request(method: str, url: str, headers: dict[str, str], timeout_s: float, max_text: int,
             **kwargs: Any) -> HttpResponse:
    import requests  # late: `gitops show` should not pay for it

    host = host_of(url)
    try:
        resp = requests.request(method, url, headers=headers, timeout=timeout_s, allow_redirects=False, **kwargs)
    except requests.Timeout:
        raise HttpUnreachable(f"{host} did not answer within {timeout_s:g} s", timeout=True) from None
    except requests.ConnectionError as exc:
        raise HttpUnreachable(f"cannot connect to {host} ({_reason(exc)})") from None
    except requests.RequestException as exc:
        raise DeployError(f"request to {host} failed ({type(exc).__name__})") from None
    return HttpResponse(status=resp.status_code, text=resp.text[:max_text], headers=dict(resp.headers),
                        reason=(resp.reason or "")[:80])


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                   "No route to host", "CERTIFICATE_VERIFY_FAILED", "timed out"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
