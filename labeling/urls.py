from django.urls import path

from labeling import views, views_dashboard, views_labeling, views_review

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/<slug:slug>/", views.project_detail, name="project-detail"),
    path("projects/<slug:slug>/upload/", views.project_upload, name="project-upload"),
    path("projects/<slug:slug>/label/", views_labeling.label_page, name="label"),
    path(
        "projects/<slug:slug>/label/preferences/", views_labeling.label_preferences,
        name="label-preferences",
    ),
    path("projects/<slug:slug>/dashboard/", views_dashboard.project_dashboard_view, name="project-dashboard"),
    path(
        "projects/<slug:slug>/dashboard/<slug:action>/", views_dashboard.project_dashboard_action,
        name="project-dashboard-action",
    ),
    path("projects/<slug:slug>/review/", views_review.review_page, name="project-review"),
    path("projects/<slug:slug>/review/<slug:report>.csv", views_review.review_csv, name="project-review-csv"),
    path("projects/<slug:slug>/review/images/<int:image_id>/adjudicate/", views_review.review_adjudicate,
         name="project-review-adjudicate"),
    path("projects/<slug:slug>/review/export/", views_review.review_export, name="project-review-export"),
    path(
        "images/<int:image_id>/<str:variant>/", views.image_file, name="image-file",
    ),
]
