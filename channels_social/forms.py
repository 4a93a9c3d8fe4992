"""The in-app channel settings' forms: brands, channels (an X handle, a Facebook page) and
listening queries. Plain Django forms; the views save them and write the audit trail.

Credentials are write-only: the fields are the adapter's ``CredentialField``s, rendered as
password inputs that never show a stored value; left empty on an edit, the stored value stays.
Where a channel's calls go is a choice (the real platform, or the operator's sandbox emulator
from the settings), never a free address: an organisation admin must not point our workers at
an internal host.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from careinbox.accounts.models import Organization
from channels_social.models import (
    Brand,
    ListeningQuery,
    Platform,
    SocialAccount,
    validate_listening_query,
)
from channels_social.registry import adapter_class

REAL, SANDBOX = "real", "sandbox"


def sandbox_url(platform: str) -> str:
    return str(
        settings.FACEBOOK_SANDBOX_URL if platform == Platform.FACEBOOK else settings.X_SANDBOX_URL
    )


class BrandForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Brand
        fields = ("name",)

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_name(self) -> str:
        name = " ".join(str(self.cleaned_data["name"]).split())
        if not name:
            raise forms.ValidationError("A brand needs a name.")
        taken = Brand.objects.for_org(self.organization).filter(name__iexact=name)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"There is already a brand called {name}.")
        return name


class ChannelForm(forms.ModelForm):  # type: ignore[type-arg]
    """One channel of one platform. The credential fields come from the platform's adapter."""

    where = forms.ChoiceField(
        label="Connect to",
        choices=[(REAL, "The real platform"), (SANDBOX, "The sandbox emulator (for trying out)")],
        widget=forms.RadioSelect,
    )

    class Meta:
        model = SocialAccount
        fields = ("username", "external_id")
        labels = {"username": "Handle or page name", "external_id": "Platform id"}

    def __init__(self, *args: Any, platform: str, organization: Organization, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.platform = platform
        self.organization = organization
        self.adapter = adapter_class(platform)
        editing = bool(self.instance.pk)
        stored = dict(self.instance.credentials or {}) if editing else {}
        if platform == Platform.FACEBOOK:
            self.fields["username"].help_text = "The page's name, as people see it."
            self.fields["external_id"].help_text = "The page id (digits)."
        else:
            self.fields["username"].help_text = "The handle, without the @."
            self.fields["external_id"].help_text = "The account's numeric user id on X."
        self.fields["where"].initial = SANDBOX if editing and self.instance.api_base_url else REAL
        self.credential_names = [field.name for field in self.adapter.credential_fields]
        for field in self.adapter.credential_fields:
            has_value = bool(stored.get(field.name))
            help_text = field.help_text
            if has_value:
                help_text = f"Stored (•••••••• hidden). Leave empty to keep it. {help_text}"
            self.fields[field.name] = forms.CharField(
                label=field.label,
                required=not editing or not has_value,
                help_text=help_text.strip(),
                strip=True,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
            )

    def clean_username(self) -> str:
        username = str(self.cleaned_data["username"]).strip().lstrip("@")
        if not username:
            raise forms.ValidationError("Enter the handle or the page's name.")
        return username

    def clean_external_id(self) -> str:
        external_id = str(self.cleaned_data["external_id"]).strip()
        if not external_id.isdigit() or len(external_id) > 25:
            raise forms.ValidationError("A platform id is digits only (up to 25).")
        taken = SocialAccount.objects.for_org(self.organization).filter(
            platform=self.platform, external_id=external_id
        )
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("This account is already connected here.")
        return external_id

    @sensitive_variables("typed")
    def typed_credentials(self) -> dict[str, str]:
        """The credentials typed in this submission (never the stored ones)."""
        typed = {name: str(self.cleaned_data.get(name) or "") for name in self.credential_names}
        return {name: value for name, value in typed.items() if value}

    @sensitive_variables("typed")
    def save(self, commit: bool = True) -> Any:
        account: SocialAccount = super().save(commit=False)
        account.platform = self.platform
        new_base = sandbox_url(self.platform) if self.cleaned_data["where"] == SANDBOX else ""
        moved = account.pk and (
            "external_id" in self.changed_data or new_base != (account.api_base_url or "")
        )
        account.api_base_url = new_base
        if moved:
            # Another account or another API: start like a newly connected one, so its old
            # posts are not imported as a backlog of breached tickets.
            account.restart_intake()
        typed = self.typed_credentials()
        if typed:
            account.set_credentials(**{**account.credentials, **typed})
        if commit:
            account.save()
        return account


class ListeningQueryForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ListeningQuery
        fields = ("query", "enabled")
        widgets = {"query": forms.TextInput(attrs={"size": 60})}

    def __init__(self, *args: Any, brand: Brand, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.brand = brand
        self.instance.brand = brand
        self.instance.organization_id = brand.organization_id
        # The length is checked in clean_query, with X's own limit in the message.
        query_field = self.fields["query"]
        query_field.max_length = None  # type: ignore[attr-defined]
        query_field.validators = []
        query_field.widget.attrs.pop("maxlength", None)

    def clean_query(self) -> str:
        query = " ".join(str(self.cleaned_data["query"]).split())
        validate_listening_query(query)  # X's length and operators
        taken = ListeningQuery.objects.filter(brand=self.brand, query=query)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("This brand already listens for exactly that.")
        return query
