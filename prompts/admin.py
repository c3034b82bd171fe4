"""The prompt library in the admin: prompts, their versions (added, never edited), labels
moved between versions, and a diff of any two versions. Tenant-scoped like every admin."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin_scoping import OrganizationScopedAdmin
from common.errors import DomainError
from prompts import services
from prompts.models import Prompt, PromptLabel, PromptVersion
from prompts.templating import diff, variables_of, version_text


def _diff_lines(prompt: Prompt, old: PromptVersion, new: PromptVersion) -> list[tuple[str, str]]:
    """(css class, line) pairs of the unified diff, for the template to colour."""
    lines = diff(
        version_text(messages=old.messages, model=old.model, parameters=old.parameters),
        version_text(messages=new.messages, model=new.model, parameters=new.parameters),
        old_name=f"{prompt.name} v{old.number}",
        new_name=f"{prompt.name} v{new.number}",
    )
    kinds = []
    for line in lines:
        if line.startswith(("+++", "---")):
            kinds.append(("hunk", line))
        elif line.startswith("+"):
            kinds.append(("add", line))
        elif line.startswith("-"):
            kinds.append(("del", line))
        elif line.startswith("@@"):
            kinds.append(("hunk", line))
        else:
            kinds.append(("", line))
    return kinds


class PromptVersionInline(admin.TabularInline):
    model = PromptVersion
    fields = ("number", "model", "commit_message", "author", "created_at", "compare")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Compare")
    def compare(self, version):
        if version.number <= 1:
            return "-"
        url = reverse("admin:prompts_prompt_diff", args=[version.prompt_id])
        return format_html(
            '<a href="{}?from={}&to={}">diff with v{}</a>',
            url,
            version.number - 1,
            version.number,
            version.number - 1,
        )


@admin.register(Prompt)
class PromptAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    organization_field = "organization"
    list_display = ("name", "organization", "label_summary", "created_at")
    list_filter = ("organization",)
    search_fields = ("name",)
    inlines = [PromptVersionInline]

    def get_readonly_fields(self, request, obj=None):
        # A prompt keeps its name and organization: usage and requests refer to them.
        return ("organization", "name", "created_at") if obj else ("created_at",)

    @admin.display(description="Labels")
    def label_summary(self, prompt):
        labels = prompt.labels.select_related("version")
        return ", ".join(f"{label.name}: v{label.version.number}" for label in labels) or "-"

    def save_scoped_model(self, request, obj, form, change):
        if change:
            services.prompt_update(prompt=obj, description=obj.description, actor=request.user)
            return
        created = services.prompt_create(
            organization=obj.organization,
            name=obj.name,
            description=obj.description,
            actor=request.user,
        )
        obj.pk, obj.created_at = created.pk, created.created_at

    def delete_model(self, request, obj):
        self.check_in_scope(request, obj)
        services.prompt_delete(prompt=obj, actor=request.user)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/diff/",
                self.admin_site.admin_view(self.diff_view),
                name="prompts_prompt_diff",
            ),
            *super().get_urls(),
        ]

    def diff_view(self, request, object_id):
        prompt = self.get_object(request, object_id)  # another organization's: 404
        if not self.has_view_permission(request, prompt):
            raise Http404("No prompt with this id.")
        versions = {version.number: version for version in prompt.versions.all()}
        if not versions:
            raise Http404("This prompt has no versions.")
        numbers = sorted(versions)

        def pick(name: str, default: int) -> PromptVersion:
            value = request.GET.get(name, "")
            number = int(value) if value.isdigit() else default
            if number not in versions:
                raise Http404(f"No version {number}.")
            return versions[number]

        old = pick("from", numbers[-2] if len(numbers) > 1 else numbers[-1])
        new = pick("to", numbers[-1])
        context = {
            **self.admin_site.each_context(request),
            "title": f"Compare versions of {prompt.name}",
            "opts": self.opts,
            "prompt": prompt,
            "old": old,
            "new": new,
            "numbers": numbers,
            "lines": _diff_lines(prompt, old, new),
        }
        return TemplateResponse(request, "admin/prompts/diff.html", context)


class PromptVersionForm(forms.ModelForm):
    class Meta:
        model = PromptVersion
        fields = ("prompt", "messages", "model", "parameters", "commit_message")
        help_texts = {
            "messages": 'A JSON list such as [{"role": "system", "content": "You help {{name}}."}]'
        }

    def clean(self):
        cleaned = super().clean()
        prompt = cleaned.get("prompt")
        if prompt is not None and not self.errors:
            try:
                services.prompt_version_check(
                    messages=cleaned.get("messages"), parameters=cleaned.get("parameters") or {}
                )
            except DomainError as error:
                raise forms.ValidationError(error.message) from None
        return cleaned


@admin.register(PromptVersion)
class PromptVersionAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    """Versions are added here and then only read: a change is a new version."""

    organization_field = "prompt__organization"
    form = PromptVersionForm
    list_display = ("__str__", "model", "commit_message", "author", "created_at")
    list_filter = ("prompt__organization",)
    search_fields = ("prompt__name", "commit_message")
    list_select_related = ("prompt", "author")

    def get_fields(self, request, obj=None):
        if obj is None:
            return PromptVersionForm.Meta.fields
        return (
            "prompt",
            "number",
            "model",
            "parameters_text",
            "messages_text",
            "variables",
            "commit_message",
            "author",
            "created_at",
            "compare",
        )

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else ()

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # what past usage was billed under stays readable

    @admin.display(description="Messages")
    def messages_text(self, version):
        return format_html("<pre>{}</pre>", json.dumps(version.messages, indent=2))

    @admin.display(description="Parameters")
    def parameters_text(self, version):
        return json.dumps(version.parameters, sort_keys=True)

    @admin.display(description="Variables")
    def variables(self, version):
        return ", ".join(variables_of(version.messages)) or "-"

    @admin.display(description="Compare")
    def compare(self, version):
        return PromptVersionInline.compare(None, version)

    def save_scoped_model(self, request, obj, form, change):
        created = services.prompt_version_create(
            prompt=obj.prompt,
            messages=obj.messages,
            model=obj.model,
            parameters=obj.parameters,
            commit_message=obj.commit_message,
            actor=request.user,
        )
        obj.pk, obj.number, obj.created_at = created.pk, created.number, created.created_at


class PromptLabelForm(forms.ModelForm):
    class Meta:
        model = PromptLabel
        fields = ("prompt", "name", "version")

    def clean(self):
        cleaned = super().clean()
        prompt, version = cleaned.get("prompt"), cleaned.get("version")
        if prompt is not None and version is not None and version.prompt_id != prompt.pk:
            raise forms.ValidationError("Pick a version of the same prompt.")
        return cleaned


@admin.register(PromptLabel)
class PromptLabelAdmin(OrganizationScopedAdmin, admin.ModelAdmin):
    """Moving a label is changing its version here."""

    organization_field = "prompt__organization"
    form = PromptLabelForm
    list_display = ("__str__", "version", "updated_at")
    list_filter = ("prompt__organization",)
    list_select_related = ("prompt", "version__prompt")

    def get_readonly_fields(self, request, obj=None):
        return ("prompt", "name") if obj else ()

    def save_scoped_model(self, request, obj, form, change):
        label = services.prompt_label_set(
            prompt=obj.prompt, label=obj.name, version=obj.version, actor=request.user
        )
        obj.pk = label.pk

    def delete_model(self, request, obj):
        self.check_in_scope(request, obj)
        services.prompt_label_remove(prompt=obj.prompt, label=obj.name, actor=request.user)
