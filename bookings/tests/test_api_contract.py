"""The chatbot API keeps to its OpenAPI document: every response validated, then Schemathesis."""

from __future__ import annotations

import re
from datetime import datetime

import hypothesis
import jsonschema
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bookings.models import ApiClient, Status
from bookings.tokens import token_hash

API = "/api/v1"


@pytest.fixture
def document(client, db) -> dict:
    return client.get(f"{API}/openapi.json").json()


def _follow(document: dict, node: dict) -> dict:
    """`node`, with a `$ref` to another part of the document followed."""
    while "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _is_datetime_with_offset(value: object) -> bool:
    # jsonschema checks date-time only with an optional package; this is the check we need:
    # ISO 8601 with an explicit offset, as the chatbot is promised.
    return not isinstance(value, str) or datetime.fromisoformat(value).utcoffset() is not None


def assert_conforms(document: dict, response, template: str) -> None:
    """The response is one the document declares for `GET template`: status, type, headers, body."""
    operation = document["paths"][template]["get"]
    declared = operation["responses"]
    assert str(response.status_code) in declared, f"{response.status_code} is not declared for {template}"
    spec = _follow(document, declared[str(response.status_code)])
    (media_type, content), *_ = spec["content"].items()
    assert response["Content-Type"] == media_type
    for name, header in spec.get("headers", {}).items():
        header = _follow(document, header)
        if header.get("required"):
            assert name in response.headers, f"{name} missing"
            value = response[name]
            jsonschema.validate(int(value) if header["schema"].get("type") == "integer" else value, header["schema"])
    schema = {**content["schema"], "components": document["components"]}
    jsonschema.Draft202012Validator(schema, format_checker=_FORMATS).validate(response.json())


@pytest.fixture
def world(counsellor, other_counsellor, session_type, slot, other_slot, make_booking):
    return {
        "pending": make_booking(Status.PENDING),
        "confirmed": make_booking(Status.CONFIRMED),
        "cancelled": make_booking(Status.CANCELLED),
        "erased": make_booking(Status.COMPLETED, anonymised_at=timezone.now()),
    }


def test_every_kind_of_response_conforms(client, document, api_token, world, settings):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api_token}"}
    calls = [
        ("/bookings/{acknowledgement_id}", f"/bookings/{world['pending'].ack_id}", 200),
        ("/bookings/{acknowledgement_id}", f"/bookings/{world['confirmed'].ack_id.lower()}", 200),
        ("/bookings/{acknowledgement_id}", f"/bookings/{world['cancelled'].ack_id}", 200),
        ("/bookings/{acknowledgement_id}", f"/bookings/{world['erased'].ack_id}", 200),
        ("/bookings/{acknowledgement_id}", "/bookings/MS-ABCDEF", 404),
        ("/bookings/{acknowledgement_id}", "/bookings/nope", 400),
        ("/availability", "/availability", 200),
        ("/availability", "/availability?session_type=individual&counsellor=rohan", 200),
        ("/availability", "/availability?from=2026-13-01", 400),
        ("/availability", "/availability?counsellor=nobody", 400),
        ("/availability", "/availability?limit=1", 200),
        ("/availability", "/availability?limit=0", 400),
        ("/availability", "/availability?cursor=bm90LWEtY3Vyc29y", 400),
        ("/session-types", "/session-types", 200),
    ]
    for template, path, status in calls:
        response = client.get(API + path, **auth)
        assert response.status_code == status, (path, response.content)
        assert_conforms(document, response, template)
    paged = client.get(f"{API}/availability?limit=1", **auth).json()
    assert paged["next"] is not None
    following = client.get(paged["next"].removeprefix("http://testserver"), **auth)
    assert following.status_code == 200
    assert_conforms(document, following, "/availability")

    unauthenticated = client.get(f"{API}/availability")
    assert unauthenticated.status_code == 401
    assert_conforms(document, unauthenticated, "/availability")

    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": (1, 60)}
    ApiClient.objects.update(rate_count=0)
    client.get(f"{API}/session-types", **auth)
    limited = client.get(f"{API}/session-types", **auth)
    assert limited.status_code == 429
    assert_conforms(document, limited, "/session-types")


def test_the_examples_in_the_document_describe_real_answers(client, document, api_token, world):
    """A slot's link opens the wizard, and the document accepts real IDs and cursors."""
    body = client.get(f"{API}/availability?limit=1", HTTP_AUTHORIZATION=f"Bearer {api_token}").json()
    assert body["booking_url_template"] == "http://testserver/book/?slot={slot_id}"
    assert body["slots"][0]["slot_id"]
    parameters = {p["name"]: p for p in document["paths"]["/availability"]["get"]["parameters"]}
    assert re.match(parameters["cursor"]["schema"]["pattern"], body["next"].rpartition("cursor=")[2])
    # The ID is read as the status page reads it, so the schema bounds only its length: a
    # pattern would refuse, in a client that checks it, IDs the API finds.
    schema = document["paths"]["/bookings/{acknowledgement_id}"]["get"]["parameters"][0]["schema"]
    assert "pattern" not in schema and schema["maxLength"] >= len(f" ms {world['pending'].ack_id[3:]}. ")


# --- Schemathesis --------------------------------------------------------------------------


SCHEMATHESIS_TOKEN = "schemathesis-token"

# Loaded when the tests are collected: the document needs neither a token nor the database.
schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", get_wsgi_application())
schema.config.update(headers={"Authorization": f"Bearer {SCHEMATHESIS_TOKEN}"})
schema.config.generation.update(max_examples=50, database="none", deterministic=True)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])


@pytest.fixture
def schemathesis_world(world, settings):
    """Real bookings and slots to find, and a token that the rate limit leaves alone."""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api": (100_000, 60)}
    ApiClient.objects.create(name="schemathesis", token_hash=token_hash(SCHEMATHESIS_TOKEN))
    # The real WSGI handler closes "old" connections around each request, which would close
    # the test's transaction on PostgreSQL; Django's own test client switches this off too.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield world
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
# The fixture's data is only read, so sharing it across generated requests is what we want.
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_schemathesis_finds_no_server_errors_and_no_nonconforming_responses(case, schemathesis_world):
    # Cross-parameter rules (to >= from, at most 31 days, a slug that names something) cannot be
    # written in JSON Schema, so a request that fits the schema may still rightly get a 400. So
    # it is with an acknowledgement ID read as the status page reads it (services.ack_id_normalise:
    # separators anywhere, "MS" optional): the schema bounds only its length.
    excluded = [positive_data_acceptance] if case.path in ("/availability", "/bookings/{acknowledgement_id}") else []
    case.call_and_validate(excluded_checks=excluded)
