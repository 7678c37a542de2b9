from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from labeling.models import Membership
from labeling.services.projects import membership_set, project_create


@pytest.fixture
def make_user(db):
    def make(username: str, **fields):
        return get_user_model().objects.create_user(username=username, password="pw-" + username, **fields)

    return make


@pytest.fixture
def project(db):
    return project_create(slug="policy", name="Policy")


@pytest.fixture
def admin_user(make_user, project):
    user = make_user("alice")
    membership_set(project=project, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def moderator(make_user, project):
    user = make_user("mod")
    membership_set(project=project, user=user, role=Membership.Role.MODERATOR)
    return user


@pytest.fixture
def outsider(make_user):
    return make_user("eve")


@pytest.fixture
def api():
    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for
