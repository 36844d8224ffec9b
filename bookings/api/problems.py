"""Errors as RFC 9457 problem details (`application/problem+json`).

Views raise `ApiProblem`; `views.api_view` turns it into the response. Problem types are
URNs: stable identifiers the chatbot can switch on, not pages to fetch.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:mindsettler:problem:"

# code -> (HTTP status, title). The titles never change for a code (RFC 9457, section 3.1.3).
PROBLEMS: dict[str, tuple[int, str]] = {
    "invalid-parameter": (400, "Invalid request parameter"),
    "unauthorized": (401, "Authentication required"),
    "booking-not-found": (404, "Booking not found"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "too-many-requests": (429, "Too many requests"),
    "server-error": (500, "Internal server error"),
    "service-unavailable": (503, "Service unavailable"),
}

API_PREFIX = "/api/"


class ApiProblem(Exception):
    def __init__(
        self,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        self.status, self.title = PROBLEMS[code]
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions or {}
        super().__init__(detail)

    def response(self) -> JsonResponse:
        # Cache-Control here too, for the problems answered outside the API's views (a failure).
        body = {
            "type": TYPE_PREFIX + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }
        response = JsonResponse(body, status=self.status, content_type=PROBLEM_CONTENT_TYPE)
        for name, value in self.headers.items():
            response[name] = value
        response.setdefault("Cache-Control", "no-store")
        return response


def invalid_parameter(name: str, reason: str) -> ApiProblem:
    """400 naming the bad parameter in `detail` and in the `invalid_params` extension."""
    return ApiProblem(
        "invalid-parameter",
        f"The parameter '{name}' is not valid: {reason}",
        extensions={"invalid_params": [{"name": name, "reason": reason}]},
    )


def unauthorized(detail: str, *, bad_token: bool) -> ApiProblem:
    # RFC 6750: no error code when no credentials were sent; invalid_token when they were wrong.
    challenge = 'Bearer realm="mindsettler-api"'
    if bad_token:
        challenge += ', error="invalid_token"'
    return ApiProblem("unauthorized", detail, headers={"WWW-Authenticate": challenge})


def too_many_requests(retry_after: int) -> ApiProblem:
    return ApiProblem(
        "too-many-requests",
        f"This API client has made too many requests. Try again in {retry_after} seconds.",
        headers={"Retry-After": str(retry_after)},
    )


def method_not_allowed(method: str) -> ApiProblem:
    return ApiProblem(
        "method-not-allowed",
        f"The API is read-only: use GET, not {method}.",
        headers={"Allow": "GET, HEAD"},
    )


def server_error() -> ApiProblem:
    return ApiProblem("server-error", "Something went wrong on our side. Try again later.")


def service_unavailable(retry_after: int) -> ApiProblem:
    return ApiProblem(
        "service-unavailable",
        f"The service is briefly unavailable. Try again in {retry_after} seconds.",
        headers={"Retry-After": str(retry_after)},
    )
