"""Template tags the pages share."""

from __future__ import annotations

from django import template

from labeling.selectors.projects import project_links, project_role

register = template.Library()


@register.inclusion_tag("labeling/_project_nav.html", takes_context=True)
def project_nav(context, project, current: str = "") -> dict:
    """The links to every page of ``project`` the signed-in user's role may open."""
    role = project_role(user=context["request"].user, project=project)
    return {"project": project, "links": project_links(project=project, role=role), "current": current}
