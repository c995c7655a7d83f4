"""A small client for the AWX / Automation Controller REST API (v2), the executor's only
way to the controller.

Every call is bounded in time (a deadline for the whole answer, engine/metrics/deadline.py),
follows no redirect (the token would go along), ignores the environment's proxies and
``.netrc``, and turns every failure into one ``AwxError`` line that never holds the token.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from engine.errors import AutoSREError
from engine.metrics.deadline import AnswerTooLargeError, DeadlineSession

API = "/api/v2"
MAX_PAGES = 10_000  # a controller that keeps answering "next" must not hold a run forever
MAX_ANSWER = 64 * 1024 * 1024


class AwxError(AutoSREError, RuntimeError):
    """One failed call; ``transient``: the same call may work a moment later. The executor
    turns it into a run's error, it never escapes."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class AwxClient:
    """Calls the controller at ``url`` with a bearer ``token``, each within ``timeout`` s."""

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._origin = _origin(self.url)
        self._token = token
        self._timeout = timeout
        self._session = DeadlineSession(max_answer=MAX_ANSWER)
        self._session.trust_env = False  # no proxy, no .netrc credentials in place of ours

    def __repr__(self) -> str:
        return f"AwxClient(url={self.url!r})"

    @property
    def token(self) -> str:
        """The bearer token (for redaction: never shown)."""
        return self._token

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def job_url(self, job_id: int) -> str:
        """The job's API address (no secret in it)."""
        return f"{self.url}{API}/jobs/{job_id}/"

    def template_id(self, ref: int | str) -> int:
        """The id of a job template given by id or by its exact name."""
        if isinstance(ref, int):
            return ref
        found = self.get_json(f"{API}/job_templates/", params={"name": ref})
        results = found.get("results")
        rows = results if isinstance(results, list) else []
        ids: list[int] = [
            r["id"]
            for r in rows
            if isinstance(r, dict)
            and isinstance(r.get("id"), int)
            and not isinstance(r["id"], bool)
        ]
        if len(ids) != 1:
            raise AwxError(f"job template {ref!r}: {len(ids)} templates have that name, want 1")
        return ids[0]

    def launch(self, template_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST the launch; the controller's answer (the new job, ``ignored_fields``)."""
        return self._json("POST", f"{API}/job_templates/{template_id}/launch/", json=dict(body))

    def job(self, job_id: int) -> dict[str, Any]:
        """The job as the controller shows it now (``status``, ``event_processing_finished``)."""
        return self.get_json(f"{API}/jobs/{job_id}/")

    def cancel(self, job_id: int) -> None:
        """Ask the controller to cancel the job; one that has already ended is no error."""
        response = self._send("POST", f"{API}/jobs/{job_id}/cancel/", json={}, allowed=(405,))
        del response

    def stdout(self, job_id: int) -> str:
        """The job's whole output as plain text."""
        path = f"{API}/jobs/{job_id}/stdout/"
        response = self._send("GET", path, params={"format": "txt"})
        return response.content.decode("utf-8", "replace")

    def pages(self, path: str, params: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every result of a paginated list, following ``next`` on the same controller."""
        next_path: str | None = path
        query = dict(params or {})
        for _ in range(MAX_PAGES):
            if next_path is None:
                return
            page = self.get_json(next_path, params=query)
            query = {}  # "next" carries the query on
            results = page.get("results")
            if not isinstance(results, list):
                raise AwxError(f"malformed answer from {_path_only(next_path)}: no results list")
            yield from (r for r in results if isinstance(r, dict))
            link = page.get("next")
            next_path = self._same_origin(link) if link else None
        raise AwxError(f"{_path_only(path)}: more than {MAX_PAGES} pages")

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET a JSON object."""
        return self._json("GET", path, params=params)

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise AwxError(f"malformed answer to {method} {_path_only(path)}: not a JSON object")
        return data

    def _send(
        self, method: str, path: str, *, allowed: tuple[int, ...] = (), **kwargs: Any
    ) -> requests.Response:
        where = f"{method} {_path_only(path)}"
        url = path if path.startswith(("http://", "https://")) else self.url + path
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        try:
            response = self._session.request(
                method,
                url,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                **kwargs,
            )
        except requests.Timeout:
            raise AwxError(
                f"AWX at {self.url} did not answer {where} within {self._timeout:g}s",
                transient=True,
            ) from None
        except requests.ConnectionError:
            raise AwxError(f"cannot reach AWX at {self.url} ({where})", transient=True) from None
        except (requests.RequestException, AnswerTooLargeError) as exc:
            raise AwxError(f"AWX {where} failed: {type(exc).__name__}") from None
        code = response.status_code
        if code < 300 or code in allowed:
            return response
        if 300 <= code < 400:
            raise AwxError(f"AWX answered {where} with a redirect (HTTP {code}): not followed")
        if code in (401, 403):
            raise AwxError(f"AWX refused the token for {where} (HTTP {code})")
        if code == 404:
            raise AwxError(f"AWX has no {_path_only(path)} (HTTP 404)")
        reason = _detail(response)
        raise AwxError(f"AWX answered {where} with HTTP {code}{reason}", transient=code >= 500)

    def _same_origin(self, link: object) -> str:
        if not isinstance(link, str):
            raise AwxError("malformed answer: a page's next link is not a string")
        if link.startswith("/"):
            return link
        if _origin(link) != self._origin:
            raise AwxError("AWX pointed a page's next link at another server: not followed")
        return link


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _path_only(path: str) -> str:
    """A path without its query (a name looked up may be long; a query is noise)."""
    return urlsplit(path).path or path


def _detail(response: requests.Response) -> str:
    """The controller's own one-line reason, if it gave one."""
    try:
        data = response.json()
    except ValueError:
        return ""
    detail = data.get("detail") if isinstance(data, dict) else None
    if not isinstance(detail, str):
        return ""
    return ": " + " ".join(detail.split())[:200]
