"""Admin for the proxy's own data: model routes, deployments, compiled prompts, cache,
stored Responses API answers, and the files and batches organizations keep upstream."""

from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin, ReadOnlyAdminMixin
from proxy.models import (
    CacheEntry,
    Deployment,
    ModelRoute,
    StoredResponse,
    TranslatedPrompt,
    UpstreamBatch,
    UpstreamFile,
)
from proxy.response_cache import services as cache_services


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 1
    fields = ("provider", "credential", "upstream_model", "weight", "priority", "enabled")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # An inline has no scoping of its own: borrow the parent admin's choices.
        if db_field.name == "credential":
            choices = self.admin_site._registry[ModelRoute].scoped_choices(db_field, request)
            if choices is not None:
                kwargs["queryset"] = choices
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(ModelRoute)
class ModelRouteAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "organization"
    list_display = ("public_name", "organization", "enabled", "deployment_count")
    list_filter = ("enabled",)
    search_fields = ("public_name", "description")
    inlines = [DeploymentInline]

    @admin.display(description="deployments")
    def deployment_count(self, route):
        return route.deployments.count()


@admin.register(Deployment)
class DeploymentAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "route__organization"
    list_display = ("route", "provider", "upstream_model", "weight", "priority", "enabled")
    list_filter = ("provider", "enabled")


@admin.register(TranslatedPrompt)
class TranslatedPromptAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "organization"
    list_display = (
        "source_hash",
        "organization",
        "status",
        "source_tokens",
        "compiled_tokens",
        "uses",
        "updated_at",
    )
    list_filter = ("status",)
    readonly_fields = (
        "source_hash",
        "source_text",
        "source_tokens",
        "compiled_text",
        "compiled_tokens",
        "translator_model",
        "status",
        "detail",
        "uses",
    )

    def has_add_permission(self, request, *args):
        return False  # rows come from traffic and the translate endpoint


@admin.register(CacheEntry)
class CacheEntryAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "organization"
    list_display = ("question", "organization", "model", "hits", "last_hit_at", "expires_at")
    list_filter = ("model",)
    search_fields = ("question",)
    ordering = ("-hits",)
    actions = ["clear_selected"]
    exclude = ("embedding",)

    def get_actions(self, request):
        # Django's bulk delete would leave the entries in Redis and in every process's
        # memory; the clear action goes through the cache's service instead.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Clear selected entries from the cache (every tier)")
    def clear_selected(self, request, queryset):
        removed = cache_services.cache_remove_entries(entries=list(queryset))
        self.message_user(request, f"Cleared {removed} cache entries.")

    def has_add_permission(self, request, *args):
        return False  # entries come from traffic

    def has_change_permission(self, request, obj=None):
        return False  # read-only: an edited answer would be served as the upstream's

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StoredResponse)
class StoredResponseAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "organization"
    list_display = ("id", "organization", "model", "created_at", "expires_at")
    list_filter = ("model",)
    search_fields = ("id",)
    readonly_fields = ("id", "organization", "api_key", "model", "response", "conversation")

    def has_add_permission(self, request, *args):
        return False  # rows come from traffic (store: true)

    def has_change_permission(self, request, obj=None):
        return False  # what the model answered is a record, not something to edit


class _UpstreamObjectAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin, admin.ModelAdmin):
    """Read-only: these rows mirror objects upstream; changing one here would not change
    the upstream's, and deleting one would strand it there."""

    organization_field = "organization"
    search_fields = ("public_id", "upstream_id")
    exclude = ("snapshot",)


@admin.register(UpstreamFile)
class UpstreamFileAdmin(_UpstreamObjectAdmin):
    list_display = ("public_id", "organization", "purpose", "filename", "bytes", "created_at")
    list_filter = ("purpose", "provider")


@admin.register(UpstreamBatch)
class UpstreamBatchAdmin(_UpstreamObjectAdmin):
    list_display = ("public_id", "organization", "model", "endpoint", "created_at", "accounted_at")
    list_filter = ("provider",)
