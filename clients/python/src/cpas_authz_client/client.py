"""The HTTP client of the authorization service (docs/api.md of the service's repository, v1).

Two faces for every question: a raising one (``check``, ``check_many``, ``functions_of``) that says why a
call failed with an :class:`AuthzError`, and a fail-closed one (``is_allowed``, ``allowed_many``,
``allowed_functions``) that answers "no" on any failure and logs a warning. Nothing here ever turns an
error into an allow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import requests
from urllib3.exceptions import NewConnectionError

from .models import (
    CLIENT_ERROR,
    CONNECTION_ERROR,
    MALFORMED_RESPONSE,
    TIMEOUT,
    UNEXPECTED_STATUS,
    AuthzError,
    CheckRequest,
    Decision,
    UserFunctions,
    parse_batch_item,
    parse_decision,
    parse_user_functions,
)

__version__ = "0.1.0"

log = logging.getLogger("cpas_authz_client")

#: The service refuses batches above this many items (413); ``check_many`` splits into chunks of this size.
BATCH_LIMIT: Final = 1000

CheckLike = CheckRequest | tuple[str, str, str] | tuple[str, str, str, bool]
_CacheKey = tuple[str, str, str]


class AuthzClient:
    """Client of one authorization service, bound to one API key.

    >>> with AuthzClient("http://authz:8000", api_key=KEY) as authz:
    ...     authz.is_allowed("0207196354", "85073003328", "dossier.search")

    ``timeout`` (seconds, for connecting and for each read) is short on purpose: an authorization check
    sits on the path of every page of the calling application, and a slow answer is worse than a deny.
    ``retries`` only ever repeats a request that failed to connect (see ``_send``). ``session`` lets the
    caller bring a configured ``requests.Session`` (proxies, TLS, adapters); the client then leaves it
    open on ``close()``. ``cache_size`` bounds the ETag cache of ``functions_of`` (0 turns it off).

    Consistency: every answer carries the CPAS's ``policy_version``. With ``track_versions`` (the default)
    the client remembers the highest one it has seen per CPAS and sends it as ``min_policy_version`` on
    every later decision, so that an answer never goes back in time, even when the calls reach different
    instances: a change this client made (``user_seen``) or a decision it got is never undone by an older
    copy of the policy. A caller that made a change elsewhere (the admin API) passes that answer's
    ``policy_version`` itself, as ``min_policy_version=`` or with :meth:`saw_version`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        timeout: float | tuple[float, float] = 2.0,
        retries: int = 2,
        backoff: float = 0.05,
        session: requests.Session | None = None,
        cache_size: int = 1024,
        track_versions: bool = True,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if not api_key or not api_key.strip():
            raise ValueError("api_key must not be empty")
        timeouts = timeout if isinstance(timeout, tuple) else (timeout,)
        if not all(t > 0 for t in timeouts):
            raise ValueError("timeout must be positive")
        if retries < 0 or backoff < 0 or cache_size < 0:
            raise ValueError("retries, backoff and cache_size must not be negative")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.cache_size = cache_size
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        # Headers go on each request, not on the session: a caller's session stays untouched.
        self._headers = {
            "Authorization": f"Bearer {api_key.strip()}",
            "Accept": "application/json",
            "User-Agent": f"cpas-authz-client/{__version__}",
        }
        self._cache: OrderedDict[_CacheKey, UserFunctions] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.track_versions = track_versions
        self._versions: dict[str, int] = {}  # CPAS -> the highest policy_version seen (a bounded dict)

    # -- consistency tokens --------------------------------------------------------------------------------
    def saw_version(self, cpas: str, version: int | None) -> None:
        """Remember that ``cpas`` reached ``version`` (e.g. the ``policy_version`` of an admin change made
        with another client): later decisions of this client are at least that current."""
        if not self.track_versions or not isinstance(version, int) or isinstance(version, bool):
            return
        with self._cache_lock:
            if version > self._versions.get(cpas, 0):
                if len(self._versions) >= 100_000:
                    self._versions.clear()
                self._versions[cpas] = version

    def _minimum(self, cpas: str, asked: int | None) -> int:
        with self._cache_lock:
            known = self._versions.get(cpas, 0)
        return max(known, asked or 0)

    def __repr__(self) -> str:  # never the key
        return f"AuthzClient({self.base_url!r})"

    # -- lifetime ----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the session if the client made it; forget cached bodies."""
        with self._cache_lock:
            self._cache.clear()
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- decisions ---------------------------------------------------------------------------------------
    def check(self, cpas: str, user: str, function: str, *, explain: bool = False,
              min_policy_version: int | None = None) -> Decision:
        """POST /enforce. A deny is a normal Decision; any failure raises :class:`AuthzError`.
        ``min_policy_version``: answer from that policy version of the CPAS or newer (503 ``unavailable``
        if the service cannot reach it in time)."""
        payload: dict[str, Any] = {"cpas": cpas, "user": user, "function": function, "explain": explain}
        minimum = self._minimum(cpas, min_policy_version)
        if minimum:
            payload["min_policy_version"] = minimum
        response = self._send("POST", "/enforce", json=payload, read_only=True)
        if response.status_code != 200:
            raise _error_of(response)
        decision = parse_decision(_json_of(response), response.status_code)
        self.saw_version(cpas, decision.policy_version)
        return decision

    def is_allowed(self, cpas: str, user: str, function: str, *, min_policy_version: int | None = None) -> bool:
        """Fail-closed check: True only on a well-formed ``"allowed": true`` answer; False on anything
        else (network, timeout, 4xx, 5xx, malformed body), with a warning in the log."""
        try:
            return self.check(cpas, user, function, min_policy_version=min_policy_version).allowed is True
        except AuthzError as err:
            # No user id in the log: in a CPAS it is a national-register number.
            log.warning("authorization check failed, denying (cpas=%s function=%s): %s", cpas, function, err)
        except Exception:
            log.warning("authorization check failed unexpectedly, denying (cpas=%s function=%s)", cpas, function,
                        exc_info=True)
        return False

    def check_many(self, requests: Sequence[CheckLike]) -> list[Decision]:
        """POST /enforce/batch, in chunks of at most :data:`BATCH_LIMIT`; one Decision per request, in
        order. A bad item gets ``Decision(allowed=False, error=ErrorInfo(...))`` without failing the
        others; a failed call raises :class:`AuthzError`. Items are ``CheckRequest`` or
        ``(cpas, user, function[, explain])`` tuples."""
        items = [_as_request(item) for item in requests]
        decisions: list[Decision] = []
        for start in range(0, len(items), BATCH_LIMIT):
            decisions.extend(self._batch(items[start:start + BATCH_LIMIT]))
        return decisions

    def allowed_many(self, requests: Sequence[CheckLike]) -> list[bool]:
        """Fail-closed batch: one bool per request, in order; all False if the call fails."""
        try:
            decisions = self.check_many(requests)
        except Exception as err:
            log.warning("authorization batch of %d failed, denying all: %s", len(requests), err,
                        exc_info=not isinstance(err, AuthzError))
            return [False] * len(requests)
        failed = sum(1 for d in decisions if d.error is not None)
        if failed:
            log.warning("authorization batch: %d of %d items failed and are denied", failed, len(decisions))
        return [d.allowed is True and d.error is None for d in decisions]

    def _batch(self, chunk: Sequence[CheckRequest]) -> list[Decision]:
        sent: list[dict[str, Any]] = []
        for index, item in enumerate(chunk):
            entry: dict[str, Any] = {"id": str(index), "cpas": item.cpas, "user": item.user, "function": item.function}
            if item.explain:
                entry["explain"] = True
            minimum = self._minimum(item.cpas, item.min_policy_version)
            if minimum:
                entry["min_policy_version"] = minimum
            sent.append(entry)
        response = self._send("POST", "/enforce/batch", json={"requests": sent}, read_only=True)
        if response.status_code != 200:
            raise _error_of(response)
        status = response.status_code
        body = _json_of(response)
        version = body.get("policy_version") if isinstance(body, dict) else None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(version, int) or isinstance(version, bool) or not isinstance(results, list):
            raise AuthzError(MALFORMED_RESPONSE, "a batch answer needs 'policy_version' and 'results'", status)
        if len(results) != len(chunk):
            raise AuthzError(MALFORMED_RESPONSE, f"{len(chunk)} requests sent, {len(results)} results", status)
        for index, raw in enumerate(results):
            # Our ids are the positions: a result out of place would give one user another's answer.
            if not isinstance(raw, dict) or raw.get("id") != str(index):
                raise AuthzError(MALFORMED_RESPONSE, f"result {index} does not answer request {index}", status)
        decisions = [parse_batch_item(raw, version, status) for raw in results]
        for item, decision in zip(chunk, decisions, strict=True):
            if decision.error is None:
                self.saw_version(item.cpas, decision.policy_version)
        return decisions

    # -- what a user may do (menus) ------------------------------------------------------------------------
    def functions_of(self, cpas: str, user: str, *, lang: str = "fr",
                     min_policy_version: int | None = None) -> UserFunctions:
        """GET /cpas/{cpas}/users/{user}/functions, revalidated with the ETag of the last answer.

        The cached body is only ever returned on the service's 304; on an error nothing stale is served
        (a removed right must not linger in a menu)."""
        key = (cpas, user, lang)
        cached = self._cache_get(key)
        headers = {"If-None-Match": cached.etag} if cached is not None and cached.etag else None
        path = f"/cpas/{_segment(cpas)}/users/{_segment(user)}/functions"
        params = {"lang": lang}
        minimum = self._minimum(cpas, min_policy_version)
        if minimum:
            params["min_policy_version"] = str(minimum)
        response = self._send("GET", path, params=params, headers=headers, read_only=True)
        status = response.status_code
        if status == 304 and cached is not None:
            self._cache_put(key, cached)
            return replace(cached, not_modified=True)
        if status != 200:
            self._cache_drop(key)
            raise _error_of(response)
        etag = response.headers.get("ETag")
        result = parse_user_functions(_json_of(response), status, etag)
        if result.user != user:
            raise AuthzError(MALFORMED_RESPONSE, "the answer is about another user", status)
        self.saw_version(cpas, result.policy_version)
        if etag:
            self._cache_put(key, result)
        else:
            self._cache_drop(key)
        return result

    def allowed_functions(self, cpas: str, user: str) -> frozenset[str]:
        """Fail-closed: the user's function codes, or an empty set on any error (or an inactive user)."""
        try:
            found = self.functions_of(cpas, user)
        except AuthzError as err:
            log.warning("functions of a user could not be read, none granted (cpas=%s): %s", cpas, err)
            return frozenset()
        except Exception:
            log.warning("functions of a user could not be read, none granted (cpas=%s)", cpas, exc_info=True)
            return frozenset()
        return frozenset(found.functions) if found.active else frozenset()

    # -- users seen at login ---------------------------------------------------------------------------------
    def user_seen(self, cpas: str, user: str, *, name: str, lang: str = "fr") -> bool:
        """PUT /cpas/{cpas}/users/{user} (scope ``users``) at login. Returns True when the service
        created the user (201), False when it knew them (200); raises :class:`AuthzError` otherwise."""
        path = f"/cpas/{_segment(cpas)}/users/{_segment(user)}"
        response = self._send("PUT", path, json={"name": name, "lang": lang}, read_only=False)
        if response.status_code in (200, 201):
            version = response.headers.get("X-Policy-Version", "")
            if version.isdigit():  # the change's token: this client's next decisions include it
                self.saw_version(cpas, int(version))
            return response.status_code == 201
        raise _error_of(response)

    # -- ETag cache --------------------------------------------------------------------------------------
    def _cache_get(self, key: _CacheKey) -> UserFunctions | None:
        with self._cache_lock:
            return self._cache.get(key)

    def _cache_put(self, key: _CacheKey, value: UserFunctions) -> None:
        if self.cache_size == 0:
            return
        with self._cache_lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _cache_drop(self, key: _CacheKey) -> None:
        with self._cache_lock:
            self._cache.pop(key, None)

    # -- transport ---------------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        read_only: bool,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One HTTP exchange, repeated at most ``retries`` times, and only when it failed to connect.

        Why so narrow:
        - never on a response, even a 503: the service did answer; asking again at once rarely helps, and
          it doubles the load on a service that just said it is in trouble, inside the caller's time budget;
        - never on a read timeout: the request reached the service, which may still be working on it.
          For a call with effects (PUT users/...) a second copy could be applied twice and would at least
          turn its "created" (201) into "known" (200); for any call it multiplies the caller's wait;
        - a connection refused or a connect timeout means the request was never sent: repeating it is
          always safe;
        - a connection dropped after sending ("connection aborted") is repeated for read-only calls only:
          POST /enforce and /enforce/batch decide without changing anything, GET is safe, but the PUT may
          have been applied.
        """
        url = self.base_url + path
        all_headers = {**self._headers, **(headers or {})}
        attempt = 0
        while True:
            try:
                return self._session.request(
                    method, url, json=json, params=params, headers=all_headers, timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.exceptions.ConnectTimeout as exc:  # before ReadTimeout/Timeout: never sent
                error = AuthzError(TIMEOUT, f"could not connect within the timeout: {exc}")
                retry = True
            except requests.exceptions.Timeout as exc:  # a read timeout: sent, no answer in time
                raise AuthzError(TIMEOUT, f"no answer within the timeout: {exc}") from exc
            except requests.exceptions.SSLError as exc:  # a TLS problem does not go away by retrying
                raise AuthzError(CONNECTION_ERROR, f"TLS error: {exc}") from exc
            except requests.exceptions.ConnectionError as exc:
                error = AuthzError(CONNECTION_ERROR, f"could not reach the authorization service: {exc}")
                retry = read_only or _never_sent(exc)
            except requests.exceptions.RequestException as exc:  # invalid URL, broken encoding...
                raise AuthzError(CLIENT_ERROR, f"request failed: {exc}") from exc
            if not retry or attempt >= self.retries:
                raise error
            delay = self.backoff * (2**attempt)
            attempt += 1
            log.debug("%s %s: %s; retry %d of %d in %.3fs", method, path, error.code, attempt, self.retries, delay)
            if delay:
                time.sleep(delay)


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when no TCP connection was made (refused, unreachable, name not resolved)."""
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError carries the cause
    return isinstance(reason, NewConnectionError)


def _json_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:  # requests' JSONDecodeError, or a body that is not UTF-8
        raise AuthzError(MALFORMED_RESPONSE, f"the answer is not JSON: {response.text[:80]!r}",
                         response.status_code) from exc


def _error_of(response: requests.Response) -> AuthzError:
    """The service's error envelope as an AuthzError; anything else as ``unexpected_status``."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return AuthzError(error["code"], str(error.get("message", "")), status, error.get("details"))
    if 200 <= status < 300:
        return AuthzError(UNEXPECTED_STATUS, f"unexpected success status {status}", status)
    return AuthzError(UNEXPECTED_STATUS, f"HTTP {status} {response.reason}: {response.text[:200]!r}", status)


def _segment(value: str) -> str:
    """A path segment with every reserved character escaped ('/' included). A user id '.' or '..' (valid
    ids) is escaped too, or the URL parser would remove it as a dot segment and ask about another path;
    a proxy that still collapses it gets an error, and an answer about another user is refused."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if value in {".", ".."} else quoted


def _as_request(item: CheckLike) -> CheckRequest:
    if isinstance(item, CheckRequest):
        return item
    if isinstance(item, tuple) and len(item) in (3, 4):
        explain = bool(item[3]) if len(item) == 4 else False
        return CheckRequest(item[0], item[1], item[2], explain)
    raise TypeError(f"a check is a CheckRequest or a (cpas, user, function[, explain]) tuple, not {item!r}")
