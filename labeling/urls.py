from django.urls import path

from labeling import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/<slug:slug>/", views.project_detail, name="project-detail"),
    path("projects/<slug:slug>/upload/", views.project_upload, name="project-upload"),
    path(
        "images/<int:image_id>/<str:variant>/", views.image_file, name="image-file",
    ),
]
