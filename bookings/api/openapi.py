"""The API's OpenAPI 3.1 document, written by hand so that it is the contract, not a by-product.

The contract tests validate every response against it, and Schemathesis generates requests
from it; change the views and this document together.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from bookings.api.problems import PROBLEMS, TYPE_PREFIX
from bookings.models import ACK_ALPHABET, Mode, Status
from bookings.services.transitions import ACK_ID_TYPED_MAX_LENGTH

_REF = "#/components/schemas/"

# Paging of /availability: part of the contract, so defined here; the view reads them too.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
CURSOR_PATTERN = "^[-_A-Za-z0-9]{1,100}$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _problem(description: str, schema: str = "Problem", headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref(schema)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _ok(description: str, schema: str, *, no_store: bool = True) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}
    if no_store:
        response["headers"] = {"Cache-Control": {"$ref": "#/components/headers/NoStore"}}
    return response


_COMMON_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "429": {"$ref": "#/components/responses/TooManyRequests"},
    "500": {"$ref": "#/components/responses/ServerError"},
    "503": {"$ref": "#/components/responses/ServiceUnavailable"},
}

_MOMENT = {
    "type": "string",
    "format": "date-time",
    "description": "ISO 8601 with the clinic's UTC offset, e.g. 2026-12-01T10:00:00+05:30.",
}
_SLUG = {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "maxLength": 50}


def _schemas() -> dict[str, Any]:
    modes = {"type": "string", "enum": list(Mode.values)}
    return {
        "Problem": {
            "type": "object",
            "description": "An error, as RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "additionalProperties": False,
            "properties": {
                "type": {
                    "type": "string",
                    "enum": [TYPE_PREFIX + code for code in PROBLEMS],
                    "description": "What kind of problem this is: a stable identifier, not a page to fetch.",
                },
                "title": {
                    "type": "string",
                    "description": "A short summary that is the same for every problem of this type.",
                },
                "status": {"type": "integer", "enum": sorted({status for status, _ in PROBLEMS.values()})},
                "detail": {"type": "string", "description": "What went wrong this time, in words for a developer."},
                "invalid_params": {
                    "type": "array",
                    "description": "The parameters that were not valid (400 only).",
                    "items": {
                        "type": "object",
                        "required": ["name", "reason"],
                        "additionalProperties": False,
                        "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
            },
        },
        "ValidationProblem": {
            "description": "A 400 problem: `detail` and `invalid_params` name the bad parameter.",
            "allOf": [_ref("Problem"), {"required": ["invalid_params"]}],
        },
        "BookingStatus": {
            "type": "object",
            "description": "What the public status page says for an acknowledgement ID: the status and what "
            "happens next. Not the session's time or mode: an acknowledgement ID alone does not show who is "
            "asking, so the client reads those on their own booking page.",
            "required": ["acknowledgement_id", "status", "status_label", "next_step", "updated_at", "details_erased"],
            "additionalProperties": False,
            "properties": {
                "acknowledgement_id": {"type": "string", "pattern": f"^MS-[{ACK_ALPHABET}]{{6}}$"},
                "status": {
                    "type": "string",
                    "enum": list(Status.values),
                    "description": "The booking's state: draft -> pending -> approved -> payment_pending -> "
                    "confirmed -> completed (or no_show: the client did not attend), or rejected / cancelled.",
                },
                "status_label": {"type": "string", "description": "The status in words for the client."},
                "next_step": {"type": "string", "description": "What happens next, or what the client should do."},
                "updated_at": _MOMENT,
                "details_erased": {
                    "type": "boolean",
                    "description": "True once the client's details have been erased, at their request or when "
                    "the clinic's retention period ended: the clinic keeps only the booking's ID, status and "
                    "amounts, and the booking has no booking page or links any more. Tell the client so "
                    "(\"this booking's details have been erased, so it has no booking page or links any "
                    "more\") rather than sending them to their booking page or our emails' links. Only a "
                    "finished booking (completed, no_show, rejected or cancelled) is ever erased.",
                },
            },
        },
        "Counsellor": {
            "type": "object",
            "required": ["slug", "display_name"],
            "additionalProperties": False,
            "properties": {"slug": _SLUG, "display_name": {"type": "string"}},
        },
        "Slot": {
            "type": "object",
            "description": "A free time that a client can book now. Its counsellor and session types are "
            "described once, in the answer's `counsellors` and `session_types`.",
            "required": ["slot_id", "start", "end", "counsellor", "session_types", "modes"],
            "additionalProperties": False,
            "properties": {
                "slot_id": {"type": "integer"},
                "start": _MOMENT,
                "end": _MOMENT,
                "counsellor": {**_SLUG, "description": "The counsellor's slug; see `counsellors`."},
                "session_types": {
                    "type": "array",
                    "description": "Slugs of the session types that fit in this slot; see `session_types`.",
                    "items": _SLUG,
                    "minItems": 1,
                },
                "modes": {"type": "array", "items": modes, "minItems": 1},
            },
        },
        "Availability": {
            "type": "object",
            "description": "One page of free slots, earliest first.",
            "required": [
                "from",
                "to",
                "time_zone",
                "booking_url_template",
                "counsellors",
                "session_types",
                "slots",
                "next",
            ],
            "additionalProperties": False,
            "properties": {
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "time_zone": {"type": "string", "description": "The clinic's time zone, e.g. Asia/Kolkata."},
                "booking_url_template": {
                    "type": "string",
                    "pattern": "^https?://.*[{]slot_id[}]",
                    "description": "Replace `{slot_id}` with a slot's `slot_id` to get the link that opens "
                    "the booking wizard with that slot chosen (an RFC 6570 URI template).",
                },
                "counsellors": {
                    "type": "array",
                    "description": "Each counsellor named in `slots`, once. With `counsellor`, that "
                    "counsellor, even when they have no free slot in the range.",
                    "items": _ref("Counsellor"),
                },
                "session_types": {
                    "type": "array",
                    "description": "Each session type named in `slots`, once, as /session-types describes it.",
                    "items": _ref("SessionType"),
                },
                "slots": {"type": "array", "items": _ref("Slot"), "maxItems": MAX_PAGE_SIZE},
                "next": {
                    "description": "The next page: the same question, continued after the last slot of this "
                    "one. Null when there are no more free slots in the range.",
                    "anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}],
                },
            },
        },
        "SessionType": {
            "type": "object",
            "required": ["slug", "name", "description", "duration_minutes", "price", "modes"],
            "additionalProperties": False,
            "properties": {
                "slug": _SLUG,
                "name": {"type": "string"},
                "description": {"type": "string"},
                "duration_minutes": {"type": "integer", "minimum": 1},
                "price": {
                    "type": "object",
                    "required": ["amount_minor", "currency", "display"],
                    "additionalProperties": False,
                    "properties": {
                        "amount_minor": {"type": "integer", "minimum": 0, "description": "In minor units (paise)."},
                        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                        "display": {"type": "string", "description": "For people, e.g. ₹1,500."},
                    },
                },
                "modes": {"type": "array", "items": modes, "minItems": 1},
            },
        },
        "SessionTypeList": {
            "type": "object",
            "required": ["session_types"],
            "additionalProperties": False,
            "properties": {"session_types": {"type": "array", "items": _ref("SessionType")}},
        },
    }


def openapi_document() -> dict[str, Any]:
    limit, period = settings.RATE_LIMITS["api"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MindSettler chatbot API",
            "version": "3.3.0",
            "description": (
                "Read-only answers for the MindSettler chatbot: a booking's status, free times to book, "
                "and the session types on offer. No response contains personal data.\n\n"
                "**Authentication**: every endpoint except this document needs `Authorization: Bearer "
                "<token>`. An administrator creates a token with `manage.py api_token create NAME` and "
                "revokes it with `manage.py api_token revoke NAME`. This document itself is public.\n\n"
                f"**Tokens expire**, {settings.API_TOKEN_DAYS} days after they are made unless the "
                "administrator chose otherwise; administrators are emailed two weeks before. "
                "`manage.py api_token rotate NAME` gives a client a new token while the old one keeps "
                "working for a few days (7 by default), so that the chatbot can be redeployed with it "
                "without a gap. An expired or replaced token gets a 401 whose `detail` says when it stopped "
                "working.\n\n"
                f"**Rate limit**: {limit} requests per {period} seconds per token; beyond that, 429 with "
                "`Retry-After`.\n\n"
                "**Errors** are RFC 9457 problem details (`application/problem+json`). HEAD gives GET's "
                "headers without the body; every other method than GET is answered with 405.\n\n"
                "**Changes.** 3.3.0: `/availability` asked about one `counsellor` names them in "
                "`counsellors` even when they have no free slot.\n\n"
                "3.2.0: tokens expire (see above); `/availability`'s `counsellor` also takes "
                "a counsellor's former slug.\n\n"
                "3.1.0: a booking's status has `details_erased`, true for a booking whose "
                "client's details have been erased (it is still found by its acknowledgement ID, as on the "
                "public status page).\n\n"
                "3.0.0, incompatible with 2.0: a booking's status no longer has `session` "
                "(its time and mode). Whoever knows an acknowledgement ID learns only what the public "
                "status page shows; the client finds their session's details on their booking page.\n\n"
                "2.0.0, incompatible with 1.0 (changed before any client was released): "
                "`/availability` answers a page at a time (`limit`, then follow `next`); each counsellor "
                "and session type is described once per answer and a slot refers to them by slug; a "
                "slot's booking link is `booking_url_template` with its `slot_id` (it was the slot's "
                "`booking_url`)."
            ),
        },
        "servers": [{"url": f"{settings.SITE_URL}/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/bookings/{acknowledgement_id}": {
                "get": {
                    "operationId": "getBookingStatus",
                    "summary": "A booking's status",
                    "description": "The status of one booking and what it means for the client: what the "
                    "public status page shows for its acknowledgement ID, including whether its details have "
                    "been erased (`details_erased`). Never the client's name, contact details or words, nor "
                    "when or how the session takes place.",
                    "parameters": [
                        {
                            "name": "acknowledgement_id",
                            "in": "path",
                            "required": True,
                            "description": "The booking's acknowledgement ID, e.g. MS-7KQ2XD, as the client "
                            "gives it: read as the public status page reads it, in any case, with spaces, "
                            "dashes of any kind, underscores or dots anywhere (ms 7kq-2xd, MS\u20137KQ2XD, "
                            "MS-7KQ2XD.), and with or without MS. Percent-encode what a path needs encoded "
                            "(a space as %20). A text that cannot be an ID is a 400.",
                            "schema": {"type": "string", "minLength": 1, "maxLength": ACK_ID_TYPED_MAX_LENGTH},
                        }
                    ],
                    "responses": {
                        "200": _ok("The booking's status.", "BookingStatus"),
                        "400": _problem("The acknowledgement ID is malformed.", "ValidationProblem"),
                        "404": _problem("No booking has this acknowledgement ID."),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/availability": {
                "get": {
                    "operationId": "getAvailability",
                    "summary": "Free times to book",
                    "description": "Free slots between two dates (inclusive, at most 31 days), within the "
                    "clinic's booking notice and horizon, earliest first, a page at a time: at most `limit` "
                    "slots, and a `next` link to the rest. Each slot names its counsellor and the session "
                    "types that fit it; the answer describes each of those once. A slot's booking link is "
                    "`booking_url_template` with its `slot_id`.",
                    "parameters": [
                        {
                            "name": "from",
                            "in": "query",
                            "description": "First day, YYYY-MM-DD, in the clinic's time zone. Default: today.",
                            "schema": {"type": "string", "format": "date"},
                        },
                        {
                            "name": "to",
                            "in": "query",
                            "description": "Last day, YYYY-MM-DD, inclusive; at most 30 days after `from`. "
                            "Default: 13 days after `from`.",
                            "schema": {"type": "string", "format": "date"},
                        },
                        {
                            "name": "session_type",
                            "in": "query",
                            "description": "Only slots that fit this session type (a slug from /session-types).",
                            "schema": {**_SLUG, "pattern": "^[-a-zA-Z0-9_]*$"},
                        },
                        {
                            "name": "counsellor",
                            "in": "query",
                            "description": "Only this counsellor's slots (the slug in a slot's `counsellor`). "
                            "A slug the counsellor had before their link name changed names them too: the answer "
                            "(its `counsellors`, each slot's `counsellor` and `next`) names them by their current "
                            "slug, which the chatbot should keep from then on.",
                            "schema": {**_SLUG, "pattern": "^[-a-zA-Z0-9_]*$"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "description": f"At most this many slots in the answer. Default: {DEFAULT_PAGE_SIZE}.",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_PAGE_SIZE,
                                "default": DEFAULT_PAGE_SIZE,
                            },
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": "Where to continue: set by the `next` link of the previous page. "
                            "Opaque; do not build one.",
                            "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                        },
                    ],
                    "responses": {
                        "200": _ok("A page of free slots, earliest first.", "Availability"),
                        "400": _problem(
                            "A parameter is malformed, unknown or given twice, the range is wrong, a slug names "
                            "nothing bookable, or the cursor is not one from a `next` link.",
                            "ValidationProblem",
                        ),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/session-types": {
                "get": {
                    "operationId": "listSessionTypes",
                    "summary": "Session types on offer",
                    "description": "The bookable session types, with duration, price and modes.",
                    "responses": {"200": _ok("The session types.", "SessionTypeList"), **_COMMON_ERRORS},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApiDocument",
                    "summary": "This document",
                    "description": "Public: needs no token.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `manage.py api_token create NAME` or `rotate NAME`; it "
                    "works until it expires.",
                }
            },
            "headers": {
                "NoStore": {
                    "description": "Answers are never cached.",
                    "required": True,
                    "schema": {"type": "string", "const": "no-store"},
                },
                "RetryAfter": {
                    "description": "Seconds until the next request may succeed.",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1},
                },
                "WWWAuthenticate": {
                    "description": "The Bearer challenge (RFC 6750).",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^Bearer "},
                },
            },
            "responses": {
                "Unauthorized": _problem(
                    "No token, a token that is unknown, revoked or expired, or a token sent in the URL "
                    "(`access_token`). For a token that has expired, or that a rotation replaced and whose "
                    'overlap is over, `detail` says when it stopped working, e.g. "This token expired on '
                    '2027-03-01 10:00 IST; ask an administrator for a new one."',
                    headers={
                        "WWW-Authenticate": {"$ref": "#/components/headers/WWWAuthenticate"},
                        "Cache-Control": {"$ref": "#/components/headers/NoStore"},
                    },
                ),
                "TooManyRequests": _problem(
                    "This token made too many requests; wait for `Retry-After` seconds.",
                    headers={"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
                ),
                "ServerError": _problem("Something failed on the server; try again later."),
                "ServiceUnavailable": _problem(
                    "The database is briefly unreachable; try again after `Retry-After` seconds.",
                    headers={"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
                ),
            },
            "schemas": _schemas(),
        },
    }
