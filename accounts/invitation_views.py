"""The page an invitation's link opens: sign in (or choose a password) and join."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth import authenticate
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import invitations
from common.errors import DomainError


class ExistingAccountForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput(render_value=False), strip=False)


class NewAccountForm(forms.Form):
    password = forms.CharField(
        label="New password", widget=forms.PasswordInput(render_value=False), strip=False
    )
    password_again = forms.CharField(
        label="New password again", widget=forms.PasswordInput(render_value=False), strip=False
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") != cleaned.get("password_again"):
            raise forms.ValidationError("The two passwords differ.")
        return cleaned


@never_cache
@sensitive_post_parameters("password", "password_again")
def invitation_accept_view(request, token: str):
    invitation = invitations.invitation_for_token(token)
    context = {**admin.site.each_context(request), "invitation": invitation}
    if invitation is None:
        return TemplateResponse(request, "accounts/invitation_accept.html", context, status=404)
    account = invitations.invitation_account(invitation=invitation)
    has_account = account is not None and account.has_usable_password()
    form_class = ExistingAccountForm if has_account else NewAccountForm
    form = form_class(request.POST or None)
    context.update(
        organization_name=invitation.organization.name,
        role=invitation.get_role_display(),
        email=invitation.email,
        has_account=has_account,
        username=account.username if has_account else "",
    )
    if request.method == "POST" and form.is_valid():
        try:
            if has_account:
                # Through the authentication backends, so django-axes counts failures.
                user = authenticate(
                    request, username=account.username, password=form.cleaned_data["password"]
                )
                if user is None:
                    form.add_error(None, "That password is not right for this account.")
                else:
                    invitations.invitation_accept(invitation=invitation, user=user)
            else:
                user = invitations.invitation_accept_with_password(
                    invitation=invitation, password=form.cleaned_data["password"]
                )
        except DomainError as error:
            form.add_error(None, error.message)
        if not form.errors:
            context.update(joined=True, can_sign_in=user.is_staff)
            return TemplateResponse(request, "accounts/invitation_accept.html", context)
    context["form"] = form
    return TemplateResponse(request, "accounts/invitation_accept.html", context)
