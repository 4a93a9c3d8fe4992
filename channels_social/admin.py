from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from careinbox.admin_scoping import OrgScopedAdmin
from channels_social.models import Brand, SocialAccount
from channels_social.registry import platforms_with_adapters

CREDENTIAL_FIELDS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")


def _formfield(db_field: Any, **kwargs: Any) -> Any:
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


class SocialAccountForm(forms.ModelForm):  # type: ignore[type-arg]
    """Credentials are write-only: shown never, replaced only when a new value is typed."""

    consumer_key = forms.CharField(required=False, widget=forms.PasswordInput)
    consumer_secret = forms.CharField(required=False, widget=forms.PasswordInput)
    access_token = forms.CharField(required=False, widget=forms.PasswordInput)
    access_token_secret = forms.CharField(required=False, widget=forms.PasswordInput)

    class Meta:
        model = SocialAccount
        fields = ("brand", "platform", "external_id", "username", "api_base_url", "enabled")
        formfield_callback = _formfield

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "platform" in self.fields:  # only networks CareInbox can talk to yet
            self.fields["platform"].choices = platforms_with_adapters()  # type: ignore[attr-defined]

    @sensitive_variables("typed")
    def save(self, commit: bool = True) -> Any:
        account: SocialAccount = super().save(commit=False)
        if account.pk and {"external_id", "api_base_url", "platform"} & set(self.changed_data):
            # Another account or another API: start like a newly connected handle, so its
            # old mentions are not imported as a backlog of breached tickets.
            account.mentions_since_id = ""
            account.connected_at = timezone.now()
        typed = {name: self.cleaned_data.get(name) for name in CREDENTIAL_FIELDS}
        if any(typed.values()):
            account.set_credentials(
                **{**account.credentials, **{k: v for k, v in typed.items() if v}}
            )
        if commit:
            account.save()
        return account


@admin.register(Brand)
class BrandAdmin(OrgScopedAdmin):
    list_display = ("name", "organization", "created_at")


@admin.register(SocialAccount)
class SocialAccountAdmin(OrgScopedAdmin):
    form = SocialAccountForm
    organization_from = "brand"
    list_display = ("username", "platform", "brand", "enabled", "last_polled_at", "has_credentials")
    status_fields = ("connected_at", "mentions_since_id", "last_polled_at", "last_poll_error")

    @admin.display(boolean=True, description="Credentials stored")
    def has_credentials(self, obj: SocialAccount) -> bool:
        return bool(obj.credentials)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Where workers send signed requests is for operators only: an organisation admin
        # pointing it at an internal address would make our workers call it (SSRF).
        if request.user.is_superuser:
            return self.status_fields
        return ("api_base_url", *self.status_fields)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*SocialAccountForm.Meta.fields, *CREDENTIAL_FIELDS, *self.status_fields]

    @method_decorator(sensitive_post_parameters(*CREDENTIAL_FIELDS))
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)
