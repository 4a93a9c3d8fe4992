"""The endpoint form: the settings page and the API validate through it alike."""

from __future__ import annotations

from typing import Any

from django import forms

from careinbox.accounts.models import Organization
from monitoring.webhooks.delivery import address_problem
from monitoring.webhooks.models import WebhookEndpoint, WebhookEventType


class WebhookEndpointForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What receives it, e.g. “CRM”.")
    url = forms.CharField(
        label="URL",
        max_length=500,
        help_text="https:// address of your receiver (public addresses only).",
        widget=forms.URLInput,
    )
    events = forms.MultipleChoiceField(
        choices=WebhookEventType.choices, widget=forms.CheckboxSelectMultiple
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(
        self,
        *args: Any,
        organization: Organization,
        endpoint: WebhookEndpoint | None = None,
        **kwargs: Any,
    ) -> None:
        if endpoint is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": endpoint.name,
                "url": endpoint.url,
                "events": endpoint.events,
                "enabled": endpoint.enabled,
            }
        super().__init__(*args, **kwargs)
        self.organization = organization
        self.endpoint = endpoint

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the endpoint a name.")
        taken = WebhookEndpoint.objects.for_org(self.organization).filter(name__iexact=name)
        if self.endpoint is not None:
            taken = taken.exclude(pk=self.endpoint.pk)
        if taken.exists():
            raise forms.ValidationError("Another endpoint has this name.", code="duplicate")
        return name

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        try:
            forms.URLField(assume_scheme="https").clean(url)
        except forms.ValidationError:
            raise forms.ValidationError(
                "Enter a full address, e.g. https://example.com/hooks."
            ) from None
        problem = address_problem(url)
        if problem:
            raise forms.ValidationError(problem)
        return url
