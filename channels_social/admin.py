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
from channels_social.intake import quarantine_retry
from channels_social.models import Brand, ListeningQuery, QuarantinedPost, SocialAccount
from channels_social.registry import all_credential_fields, platforms_with_adapters

# Every adapter's secrets, by name (an X handle's OAuth keys, a Facebook page's token, ...).
CREDENTIAL_FIELDS = tuple(field.name for field in all_credential_fields())


def _formfield(db_field: Any, **kwargs: Any) -> Any:
    if isinstance(db_field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return db_field.formfield(**kwargs)


def _credential_formfields() -> dict[str, forms.Field]:
    return {
        field.name: forms.CharField(
            required=False, label=field.label, help_text=field.help_text, widget=forms.PasswordInput
        )
        for field in all_credential_fields()
    }


class _SocialAccountBaseForm(forms.ModelForm):  # type: ignore[type-arg]
    """Credentials are write-only: shown never, replaced only when a new value is typed.

    The credential fields are the ones the adapters declare (``credential_fields``), added as
    declared fields below so the admin knows them.
    """

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
            account.restart_intake()
        typed = {name: self.cleaned_data.get(name) for name in CREDENTIAL_FIELDS}
        if any(typed.values()):
            account.set_credentials(
                **{**account.credentials, **{k: v for k, v in typed.items() if v}}
            )
            if account.auth_failed_at is not None:
                # New credentials for a channel disconnected because its old ones were
                # refused: back on, polled at once (the next poll says whether they work).
                account.enabled = True
                account.auth_failed_at = None
                account.disabled_reason = ""
                account.next_poll_at = timezone.now()
        if commit:
            account.save()
        return account


SocialAccountForm = type(
    "SocialAccountForm",
    (_SocialAccountBaseForm,),
    {**_credential_formfields(), "__module__": __name__},
)


@admin.register(Brand)
class BrandAdmin(OrgScopedAdmin):
    list_display = ("name", "organization", "created_at")


@admin.register(SocialAccount)
class SocialAccountAdmin(OrgScopedAdmin):
    form = SocialAccountForm
    organization_from = "brand"
    list_display = (
        "username",
        "platform",
        "brand",
        "enabled",
        "last_polled_at",
        "last_poll_error_at",
        "has_credentials",
    )
    status_fields = (
        "connected_at",
        "last_polled_at",
        "next_poll_at",
        "last_poll_error",
        "last_poll_error_at",
        "rate_limit_remaining",
        "rate_limit_reset_at",
        "pacing_reason",
        "auth_failed_at",
        "disabled_reason",
    )

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
        return [*_SocialAccountBaseForm.Meta.fields, *CREDENTIAL_FIELDS, *self.status_fields]

    @method_decorator(sensitive_post_parameters(*CREDENTIAL_FIELDS))
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)


@admin.register(ListeningQuery)
class ListeningQueryAdmin(OrgScopedAdmin):
    """The searches CareInbox runs on X for a brand; each match becomes a ticket."""

    organization_from = "brand"
    list_display = ("query", "brand", "enabled", "created_at")
    list_filter = ("enabled",)
    fields = ("brand", "query", "enabled")


@admin.register(QuarantinedPost)
class QuarantinedPostAdmin(OrgScopedAdmin):
    """Posts intake set aside: what went wrong, the raw item, and a retry once it is fixed."""

    organization_from = "account"
    list_display = (
        "external_id",
        "account",
        "stream",
        "error",
        "attempts",
        "created_at",
        "resolved_at",
    )
    list_filter = ("resolved_at",)
    readonly_fields = (
        "account",
        "stream",
        "external_id",
        "error",
        "payload",
        "post",
        "attempts",
        "created_at",
        "last_tried_at",
        "resolved_at",
    )
    actions = ("retry",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry storing the selected posts")
    def retry(self, request: HttpRequest, queryset: Any) -> None:
        for item in queryset:
            outcome = quarantine_retry(item_id=item.pk)
            self.message_user(request, f"{item.external_id or item.pk}: {outcome}")
