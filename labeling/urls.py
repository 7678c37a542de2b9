from django.urls import path

from labeling.views import dashboard, flags, images, items, labeling, projects, review, settings

urlpatterns = [
    path("", projects.project_list, name="project-list"),
    path("new-project/", settings.project_create, name="project-create"),
    path("projects/<slug:slug>/", projects.project_detail, name="project-detail"),
    path("projects/<slug:slug>/settings/", settings.project_settings, name="project-settings"),
    path("projects/<slug:slug>/settings/categories/", settings.project_categories, name="project-categories"),
    path("projects/<slug:slug>/settings/members/", settings.project_member_add, name="project-member-add"),
    path(
        "projects/<slug:slug>/settings/members/<str:username>/",
        settings.project_member_change,
        name="project-member-change",
    ),
    path(
        "projects/<slug:slug>/settings/members/<str:username>/remove/",
        settings.project_member_remove,
        name="project-member-remove",
    ),
    path("projects/<slug:slug>/upload/", projects.project_upload, name="project-upload"),
    path("projects/<slug:slug>/items/", items.item_browser, name="project-items"),
    path("projects/<slug:slug>/items/<int:image_id>/", items.item_page, name="project-item"),
    path("projects/<slug:slug>/label/", labeling.label_page, name="label"),
    path(
        "projects/<slug:slug>/label/preferences/",
        labeling.label_preferences,
        name="label-preferences",
    ),
    path("projects/<slug:slug>/dashboard/", dashboard.project_dashboard_view, name="project-dashboard"),
    path(
        "projects/<slug:slug>/dashboard/<slug:action>/",
        dashboard.project_dashboard_action,
        name="project-dashboard-action",
    ),
    path("projects/<slug:slug>/review/", review.review_page, name="project-review"),
    path("projects/<slug:slug>/review/<slug:report>.csv", review.review_csv, name="project-review-csv"),
    path(
        "projects/<slug:slug>/review/images/<int:image_id>/adjudicate/",
        review.review_adjudicate,
        name="project-review-adjudicate",
    ),
    path("projects/<slug:slug>/review/export/", review.review_export, name="project-review-export"),
    path("projects/<slug:slug>/flags/", flags.flag_queue_page, name="project-flags"),
    path(
        "projects/<slug:slug>/flags/images/<int:image_id>/resolve/",
        flags.flag_queue_resolve,
        name="project-flags-resolve",
    ),
    path(
        "images/<int:image_id>/<str:variant>/",
        images.image_file,
        name="image-file",
    ),
]
