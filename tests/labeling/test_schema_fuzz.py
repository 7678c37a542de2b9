"""The REST API fuzzed from its own OpenAPI schema.

The schema is loaded from ``/api/schema/`` (drf-spectacular) and schemathesis generates
valid and invalid requests for every operation, sent through Django's WSGI handler with
a token, once as an admin and once as a moderator of the project. Path parameters point
at the real objects of the access tests' world (a project with imported images, round 0,
a finished export), so requests get past the lookups and reach the validation and the
services. No answer may be a server error; a success must be documented and match its
schema; an error must be the ``{message, code, extra}`` body.
"""

from __future__ import annotations

import json

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.labeling.test_access import World, build_world

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = {"admin": 15, "moderator": 8}
SEED = 20261121


@pytest.fixture
def wsgi_app():
    """Django's WSGI handler, without closing the test's database connection after each
    request (Django's test client does the same)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(project, admin_user, moderator, outsider, tmp_path) -> World:
    return build_world(project=project, admin_user=admin_user, moderator=moderator, outsider=outsider,
                       folder=tmp_path / "incoming")


@pytest.fixture(params=sorted(EXAMPLES))
def role(request) -> str:
    return request.param


@pytest.fixture
def token_header(fuzz_world, role) -> dict:
    token = Token.objects.create(user=fuzz_world.users[role])
    return {"Authorization": f"Token {token.key}"}


@pytest.fixture
def api_schema(fuzz_world, wsgi_app, role):
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": EXAMPLES[role]},
        "phases": {"coverage": {"enabled": False}},
    })
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


def path_values(world: World, role: str, path: str) -> dict:
    return {
        "slug": world.project.slug,
        "image_id": world.image.pk,
        "item_id": world.items[role],
        "reveal_id": world.reveals[role],
        "job_id": world.export_job.pk if path.startswith("/api/exports/") else world.import_job.pk,
    }


@schema.parametrize()
@hypothesis.settings(deadline=None, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_no_generated_request_gets_a_server_error(case, fuzz_world, role, token_header):
    values = path_values(fuzz_world, role, case.operation.path)
    if case.path_parameters:
        case.path_parameters = {name: values[name] for name in case.path_parameters}
    response = case.call(headers=token_header)
    checks = [not_a_server_error]
    if response.status_code < 400:
        checks += [status_code_conformance, content_type_conformance, response_schema_conformance]
    case.validate_response(response, checks=checks)
    if 400 <= response.status_code < 500 and case.operation.path not in ("/api/schema/", "/api/docs/"):
        body = json.loads(response.content)
        assert set(body) == {"message", "code", "extra"}, body
        assert body["message"], body
