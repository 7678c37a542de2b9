"""Background jobs: a project's list, and one job's progress."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.api import serializers as s
from labeling.models import Job
from labeling.selectors.jobs import job_get_for_user, jobs_of_project
from labeling.selectors.projects import project_get_for_user


class JobDetailApi(APIView):
    @extend_schema(responses=s.JobOutputSerializer)
    def get(self, request, job_id: int):
        job = job_get_for_user(user=request.user, job_id=job_id)
        return Response(s.JobOutputSerializer(job).data)


class ProjectJobListApi(generics.ListAPIView):
    serializer_class = s.JobOutputSerializer
    filterset_fields = ["kind", "status"]
    queryset = Job.objects.none()  # the schema's model; get_queryset() answers requests

    def get_queryset(self):
        project = project_get_for_user(user=self.request.user, slug=self.kwargs["slug"])
        return jobs_of_project(project=project)
