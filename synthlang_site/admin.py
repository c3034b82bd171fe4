"""Recent task runs, and buttons to start a backup or the monthly reports: platform staff only.

Organization admins are ``is_staff`` too (that opens the admin to them), so every check
here asks for a superuser: task runs and backups are about the whole platform.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from synthlang_site import services
from synthlang_site.models import TaskRun


def _is_platform_staff(request) -> bool:
    user = request.user
    return bool(user.is_active and user.is_superuser)


@admin.register(TaskRun)
class TaskRunAdmin(admin.ModelAdmin):
    list_display = (
        "task_name",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "requested_by",
        "result_summary",
        "error",
    )
    list_filter = ("task_name", "status")
    list_select_related = ("requested_by",)
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in TaskRun._meta.fields]
    change_list_template = "admin/synthlang_site/taskrun/change_list.html"

    # Read-only for everyone: runs are written by the tasks themselves.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return _is_platform_staff(request)

    def has_module_permission(self, request) -> bool:
        return _is_platform_staff(request)

    def get_urls(self):
        return [
            path(
                "start-backup/",
                self.admin_site.admin_view(self.start_backup_view),
                name="synthlang_site_taskrun_start_backup",
            ),
            path(
                "start-monthly-reports/",
                self.admin_site.admin_view(self.start_reports_view),
                name="synthlang_site_taskrun_start_reports",
            ),
            *super().get_urls(),
        ]

    def _refusal(self, request):
        if not _is_platform_staff(request):
            raise PermissionDenied
        # A GET must never start a job (a prefetching browser, a crawler, a stray link);
        # the change list's buttons POST with a CSRF token.
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return None

    def start_backup_view(self, request):
        if refusal := self._refusal(request):
            return refusal
        task_run = services.backup_request(actor=request.user)
        task_run.refresh_from_db()
        self.message_user(request, f"Backup started: {task_run}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:synthlang_site_taskrun_changelist"))

    def start_reports_view(self, request):
        if refusal := self._refusal(request):
            return refusal
        month = request.POST.get("month", "").strip() or None
        try:
            task_run = services.monthly_reports_request(actor=request.user, month=month)
        except ValueError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            task_run.refresh_from_db()
            self.message_user(request, f"Monthly reports started: {task_run}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:synthlang_site_taskrun_changelist"))
