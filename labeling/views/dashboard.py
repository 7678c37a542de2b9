"""The admins' project dashboard and its actions (start round 0, retrain, pretrain, embed)."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.errors import ApplicationError
from labeling.models import Job, Project
from labeling.selectors.dashboard import project_dashboard
from labeling.services import rounds, training
from labeling.views.shortcuts import page_errors, project_for_page


class PretrainForm(forms.Form):
    minutes = forms.FloatField(min_value=0.1, max_value=24 * 60, initial=5)


@login_required
@require_GET
@page_errors()
def project_dashboard_view(request, slug: str):
    project = project_for_page(request, slug, admin=True)
    context = {"project": project, "pretrain_form": PretrainForm(), **project_dashboard(project=project)}
    return render(request, "labeling/dashboard.html", context)


def _start_round(request, project: Project) -> str:
    round_ = rounds.round_start(actor=request.user, project=project)
    items = round_.items.count()
    evaluation = round_.items.filter(is_eval=True).count()
    return f"Round 0 started: {items} items, {evaluation} of them from the evaluation split."


def _retrain(request, project: Project) -> str:
    return _job_message(rounds.retrain_job_submit(actor=request.user, project=project, reason="retrain now"))


def _pretrain(request, project: Project) -> str:
    form = PretrainForm(request.POST)
    if not form.is_valid():
        raise ApplicationError(f"Pretraining minutes: {' '.join(form.errors['minutes'])}", code="invalid")
    return _job_message(
        training.pretrain_job_submit(
            actor=request.user, project=project, config="tiny", minutes=form.cleaned_data["minutes"]
        )
    )


def _embed(request, project: Project) -> str:
    return _job_message(training.embed_job_submit(actor=request.user, project=project))


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


@login_required
@require_POST
@page_errors(back="project-dashboard")
def project_dashboard_action(request, slug: str, action: str):
    project = project_for_page(request, slug, admin=True)
    run = ACTIONS.get(action)
    if run is None:
        raise Http404(f"No dashboard action {action!r}.")
    messages.success(request, run(request, project))
    return redirect("project-dashboard", slug=project.slug)
