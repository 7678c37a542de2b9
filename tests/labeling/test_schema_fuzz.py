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
import hypothesis.errors
import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.labeling.test_access import World, build_world

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = {"admin": 12, "moderator": 10}
SCHEMA_PAGES = ("/api/schema/", "/api/docs/")  # drf-spectacular's own views


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
    admin_user.is_staff = True  # project creation is fuzzed too
    admin_user.save(update_fields=["is_staff"])
    return build_world(
        project=project, admin_user=admin_user, moderator=moderator, outsider=outsider, folder=tmp_path / "incoming"
    )


@pytest.fixture(params=sorted(EXAMPLES))
def role(request) -> str:
    return request.param


@pytest.fixture
def token_header(fuzz_world, role) -> dict:
    token = Token.objects.create(user=fuzz_world.users[role])
    return {"Authorization": f"Token {token.key}"}


def path_values(world: World, role: str, path: str) -> dict:
    return {
        "slug": world.project.slug,
        "image_id": world.image.pk,
        "item_id": world.items[role],
        "reveal_id": world.reveals[role],
        "annotation_id": world.annotation.pk,
        "job_id": world.export_job.pk if path.startswith("/api/exports/") else world.import_job.pk,
        "id": world.head.pk,  # drf-spectacular names a <pk> path parameter "id"
    }


def check(case, headers: dict) -> None:
    """One generated request, in a savepoint rolled back afterwards: every request meets
    the same world, and a database error cannot spill into the next one."""
    with transaction.atomic():
        response = case.call(headers=headers)
        transaction.set_rollback(True)
    checks = [not_a_server_error]
    if response.status_code < 400:
        checks += [status_code_conformance, content_type_conformance, response_schema_conformance]
    case.validate_response(response, checks=checks)
    if 400 <= response.status_code < 500 and case.operation.path not in SCHEMA_PAGES:
        body = json.loads(response.content)
        assert set(body) == {"message", "code", "extra"} and body["message"], (
            f"{response.status_code} from {case.operation.label} is not a {{message, code, extra}} body: {body}"
        )


def test_no_generated_request_gets_a_server_error(fuzz_world, wsgi_app, role, token_header):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    settings = hypothesis.settings(
        max_examples=EXAMPLES[role],
        deadline=None,
        database=None,
        derandomize=True,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        fixed = {
            name: value
            for name, value in path_values(fuzz_world, role, operation.path).items()
            if "{" + name + "}" in operation.path
        }
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode, path_parameters=fixed or None, headers=token_header)

            @settings
            @hypothesis.given(case=strategy)
            def fuzz(case):
                check(case, token_header)

            try:
                fuzz()
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request can be generated"
            except (Exception, BaseExceptionGroup) as exc:  # every operation runs; all failures are reported
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:2000]}")
    assert operations >= 30, f"only {operations} operations in the schema"
    assert not failures, "\n\n".join(failures)
