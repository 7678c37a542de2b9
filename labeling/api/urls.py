from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from labeling.api import queue, review, views

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="api-token"),
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
    path("projects/<slug:slug>/categories/", review.CategoryListApi.as_view(), name="api-categories"),
    path("projects/<slug:slug>/annotations/", review.AnnotationListApi.as_view(), name="api-annotations"),
    path("projects/<slug:slug>/model-versions/", review.ModelVersionListApi.as_view(), name="api-model-versions"),
    path("projects/<slug:slug>/reports/agreement/", review.AgreementReportApi.as_view(), name="api-agreement"),
    path("projects/<slug:slug>/reports/disagreements/", review.DisagreementsApi.as_view(),
         name="api-disagreements"),
    path("projects/<slug:slug>/reports/model-disagreements/", review.ModelDisagreementsApi.as_view(),
         name="api-model-disagreements"),
    path("projects/<slug:slug>/exports/", review.ExportJobApi.as_view(), name="api-exports"),
    path("projects/<slug:slug>/export/", review.ExportStreamApi.as_view(), name="api-export-stream"),
    path("exports/<int:job_id>/download/", review.ExportDownloadApi.as_view(), name="api-export-download"),
    path("images/<int:image_id>/adjudications/", review.AdjudicationApi.as_view(), name="api-adjudications"),
    path("images/<int:image_id>/gold/", review.GoldApi.as_view(), name="api-gold"),
    path("images/<int:image_id>/", views.ImageDetailApi.as_view(), name="api-image"),
    path("jobs/<int:job_id>/", views.JobDetailApi.as_view(), name="api-job"),
]
