from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from careinbox.admin_scoping import OrgScopedAdmin
from channels_social.models import Brand, SocialAccount

CREDENTIAL_FIELDS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")


class SocialAccountForm(forms.ModelForm):  # type: ignore[type-arg]
    """Credentials are write-only: shown never, replaced only when a new value is typed."""

    api_base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Leave empty for the real API; set to reach a sandbox emulator.",
    )
    consumer_key = forms.CharField(required=False, widget=forms.PasswordInput)
    consumer_secret = forms.CharField(required=False, widget=forms.PasswordInput)
    access_token = forms.CharField(required=False, widget=forms.PasswordInput)
    access_token_secret = forms.CharField(required=False, widget=forms.PasswordInput)

    class Meta:
        model = SocialAccount
        fields = ("brand", "platform", "external_id", "username", "api_base_url", "enabled")

    def save(self, commit: bool = True) -> Any:
        account: SocialAccount = super().save(commit=False)
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
    list_display = ("name", "created_at")


@admin.register(SocialAccount)
class SocialAccountAdmin(OrgScopedAdmin):
    form = SocialAccountForm
    list_display = ("username", "platform", "brand", "enabled", "last_polled_at", "has_credentials")
    readonly_fields = ("mentions_since_id", "last_polled_at", "last_poll_error")

    @admin.display(boolean=True, description="Credentials stored")
    def has_credentials(self, obj: SocialAccount) -> bool:
        return bool(obj.credentials)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*SocialAccountForm.Meta.fields, *CREDENTIAL_FIELDS, *self.readonly_fields]
