from django.urls import path

from labeling.api import views

urlpatterns = [
    path("projects/", views.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", views.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<slug:slug>/images/", views.ProjectImageListApi.as_view(), name="api-project-images"),
    path("projects/<slug:slug>/uploads/", views.ImageUploadApi.as_view(), name="api-project-upload"),
    path("projects/<slug:slug>/jobs/", views.ProjectJobListApi.as_view(), name="api-project-jobs"),
    path(
        "projects/<slug:slug>/reports/class-balance/", views.ClassBalanceApi.as_view(),
        name="api-class-balance",
    ),
    path(
        "projects/<slug:slug>/reports/import-summary/", views.ImportSummaryApi.as_view(),
        name="api-import-summary",
    ),
    path("images/<int:image_id>/", views.ImageDetailApi.as_view(), name="api-image"),
    path("jobs/<int:job_id>/", views.JobDetailApi.as_view(), name="api-job"),
]
