from django.urls import path

from labeling.api import queue, views

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
    path("projects/<slug:slug>/queue/next/", queue.QueueNextApi.as_view(), name="api-queue-next"),
    path("projects/<slug:slug>/queue/undo/", queue.QueueUndoApi.as_view(), name="api-queue-undo"),
    path("queue/items/<int:item_id>/submit/", queue.QueueSubmitApi.as_view(), name="api-queue-submit"),
    path("reveals/<int:reveal_id>/finish/", queue.RevealFinishApi.as_view(), name="api-reveal-finish"),
    path("projects/<slug:slug>/reveal-budget/", queue.RevealBudgetApi.as_view(), name="api-reveal-budget"),
    path("projects/<slug:slug>/rounds/", queue.RoundListApi.as_view(), name="api-rounds"),
    path("projects/<slug:slug>/rounds/start/", queue.RoundStartApi.as_view(), name="api-rounds-start"),
    path("projects/<slug:slug>/retrain/", queue.RetrainApi.as_view(), name="api-retrain"),
    path("projects/<slug:slug>/pretrain/", queue.PretrainApi.as_view(), name="api-pretrain"),
    path("projects/<slug:slug>/embed/", queue.EmbedApi.as_view(), name="api-embed"),
    path("images/<int:image_id>/", views.ImageDetailApi.as_view(), name="api-image"),
    path("jobs/<int:job_id>/", views.JobDetailApi.as_view(), name="api-job"),
]
