from django.contrib import admin

from labeling import models


class CategoryInline(admin.TabularInline):
    model = models.Category
    extra = 0


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "overlap", "batch_size", "strategy", "created"]
    search_fields = ["slug", "name"]
    inlines = [CategoryInline, MembershipInline]


@admin.register(models.Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "name", "status", "reason", "split", "source_label", "created"]
    list_filter = ["project", "status", "reason", "split"]
    search_fields = ["name", "sha256", "ocr_text"]
    raw_id_fields = ["duplicate_of", "job"]
    readonly_fields = ["sha256", "phash", "original", "thumbnail", "blurred"]


@admin.register(models.Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "status", "done", "total", "created"]
    list_filter = ["kind", "status", "project"]


@admin.register(models.ImportIssue)
class ImportIssueAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "name", "reason"]
    list_filter = ["reason"]


class RecordAdmin(admin.ModelAdmin):
    """Labels, decisions and reveals are written only by the services that check who may
    write them (``labeling.permissions``); here they are read, never added, edited or deleted."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(models.Annotation)
class AnnotationAdmin(RecordAdmin):
    list_display = ["id", "image", "user", "kind", "category", "round", "created"]
    list_filter = ["kind", "round__project"]
    raw_id_fields = ["image", "supersedes"]


@admin.register(models.Adjudication)
class AdjudicationAdmin(RecordAdmin):
    list_display = ["id", "image", "category", "decided_by", "created"]
    raw_id_fields = ["image"]


@admin.register(models.FlagResolution)
class FlagResolutionAdmin(RecordAdmin):
    list_display = ["id", "image", "action", "category", "resolved_by", "created"]
    list_filter = ["action"]
    raw_id_fields = ["image", "flag", "adjudication"]


@admin.register(models.Reveal)
class RevealAdmin(RecordAdmin):
    list_display = ["id", "image", "user", "sensitive", "duration_ms", "created"]
    raw_id_fields = ["image"]


for model in (models.Round, models.ModelVersion):
    admin.site.register(model)
