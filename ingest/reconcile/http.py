"""A polite HTTP client for the store APIs: timeouts, capped jittered retries, Retry-After.

- Timeouts and connection errors, HTTP 429 and 5xx are retried up to `max_attempts` requests.
  The wait before retry n is a random fraction of `backoff_base * 2**(n-1)`, capped at
  `backoff_max` ("full jitter", so many sources never retry in step); a 429's `Retry-After`
  (seconds) is waited instead when given, capped at `retry_after_max`.
- 401 and 403 raise `CredentialsRejected` at once: retrying cannot help.
- Any other status, or running out of attempts, raises `ApiFailure` with what happened.

A `stop` event cuts every wait short, so the service stops without waiting out a backoff.
Credentials travel only in headers set by the caller and are never part of a message.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Any

import httpx


class ApiFailure(Exception):
    """The store API did not give an answer to use; the message says why."""


class CredentialsRejected(ApiFailure):
    """The store API refused the credentials (401 or 403)."""


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds, when it is a number."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class ApiClient:
    """One store API (base URL, headers, auth); `request` retries as the module docstring says."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: float = 20.0,
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        retry_after_max: float = 120.0,
        stop: threading.Event | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Accept": "application/json", **(headers or {})},
            auth=auth,
            timeout=timeout,
            follow_redirects=False,
        )
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.stop = stop or threading.Event()
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        self._client.close()

    def wait(self, seconds: float) -> None:
        """Sleep `seconds` unless the stop event is set meanwhile (then raise ApiFailure)."""
        if self.stop.wait(max(seconds, 0.0)):
            raise ApiFailure("stopped")

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The 2xx answer to the request; raises ApiFailure (or CredentialsRejected)."""
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            if self.stop.is_set():
                raise ApiFailure("stopped")
            self.requests += 1
            delay = self._backoff(attempt)
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TimeoutException:
                problem = "the store API did not answer in time"
            except httpx.TransportError as exc:
                problem = f"cannot reach the store API: {type(exc).__name__}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return response
                if status in (401, 403):
                    raise CredentialsRejected(
                        f"credentials rejected: the store API answered {status} "
                        "(check the key and its read scope)"
                    )
                if status != 429 and status < 500:
                    raise ApiFailure(f"the store API answered {status} to {method} {path}")
                problem = f"the store API answered {status}"
                after = retry_after_seconds(response) if status == 429 else None
                if after is not None:
                    delay = min(after, self.retry_after_max)
            if attempt < self.max_attempts:
                self.retries += 1
                self.wait(delay)
        raise ApiFailure(f"{problem} (gave up after {self.max_attempts} attempts)")
