"""Admin for the proxy's own data: model routes, deployments, compiled prompts, cache."""

from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin
from proxy.models import Deployment, ModelRoute, TranslatedPrompt


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
