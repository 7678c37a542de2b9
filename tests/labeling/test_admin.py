"""The Django admin reads labels, decisions and reveals but never writes them: only the
services that check who may write them do."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("model", ["annotation", "adjudication", "flagresolution", "reveal"])
def test_records_are_read_only_in_the_admin(client, make_user, model):
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert client.get(reverse(f"admin:labeling_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:labeling_{model}_add")).status_code == 403


def test_projects_stay_editable_in_the_admin(client, make_user):
    root = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(root)
    assert client.get(reverse("admin:labeling_project_add")).status_code == 200
