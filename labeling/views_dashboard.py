"""The admins' project dashboard and its actions (start round 0, retrain, pretrain, embed)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.errors import ApplicationError, Forbidden, NotFound
from labeling.models import Job, Project
from labeling.selectors.dashboard import project_dashboard
from labeling.selectors.projects import project_get_for_user
from labeling.services import rounds, training


class PretrainForm(forms.Form):
    minutes = forms.FloatField(min_value=0.1, max_value=24 * 60, initial=5)


def admin_project(view: Callable) -> Callable:
    """Resolve ``slug`` to a project the user administers and pass it to the view.

    Moderators of the project go back to its page with a message; anyone else gets 404.
    """

    @wraps(view)
    def wrapper(request, slug: str, **kwargs):
        try:
            project = project_get_for_user(user=request.user, slug=slug, admin=True)
        except NotFound as exc:
            raise Http404(exc.message) from exc
        except Forbidden:
            messages.error(request, "Only admins of the project can open its dashboard.")
            return redirect("project-detail", slug=slug)
        return view(request, project, **kwargs)

    return login_required(wrapper)


@admin_project
@require_GET
def project_dashboard_view(request, project: Project):
    context = {"project": project, "pretrain_form": PretrainForm(), **project_dashboard(project=project)}
    return render(request, "labeling/dashboard.html", context)


def _start_round(request, project: Project) -> str:
    round_ = rounds.round_start_initial(project=project)
    items = round_.items.count()
    evaluation = round_.items.filter(is_eval=True).count()
    return f"Round 0 started: {items} items, {evaluation} of them from the evaluation split."


def _retrain(request, project: Project) -> str:
    return _job_message(rounds.retrain_job_submit(project=project, user=request.user, reason="retrain now"))


def _pretrain(request, project: Project) -> str:
    form = PretrainForm(request.POST)
    if not form.is_valid():
        raise ApplicationError(f"Pretraining minutes: {' '.join(form.errors['minutes'])}", code="invalid")
    return _job_message(training.pretrain_job_submit(
        project=project, user=request.user, config="tiny", minutes=form.cleaned_data["minutes"]))


def _embed(request, project: Project) -> str:
    return _job_message(training.embed_job_submit(project=project, user=request.user))


def _job_message(job: Job) -> str:
    job.refresh_from_db()
    if job.status == Job.Status.SUCCEEDED:
        return f"{job.get_kind_display()} job #{job.pk} finished."
    return f"{job.get_kind_display()} job #{job.pk} is {job.status}; its progress shows below."


ACTIONS: dict[str, Callable[..., str]] = {
    "start-round": _start_round,
    "retrain": _retrain,
    "pretrain": _pretrain,
    "embed": _embed,
}


@admin_project
@require_POST
def project_dashboard_action(request, project: Project, action: str):
    run = ACTIONS.get(action)
    if run is None:
        raise Http404(f"No dashboard action {action!r}.")
    try:
        messages.success(request, run(request, project))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("project-dashboard", slug=project.slug)
