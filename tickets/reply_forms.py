"""Forms of the reply tools' settings: canned responses, priority rules, approval rules."""

from __future__ import annotations

from typing import Any

from django import forms

from channels_social.models import Brand
from tickets.canned import PLACEHOLDERS, CannedError, split_variants, validate_variants
from tickets.models import ApprovalRules, CannedResponse, PriorityRules, Step


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]


class CannedResponseForm(forms.ModelForm):
    variants_text = forms.CharField(
        label="Variants",
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Word the same reply a few ways, separated by a line of three dashes (---), "
        "so no two customers get the same text. Placeholders: "
        + ", ".join("{" + name + "} " + what for name, what in PLACEHOLDERS.items())
        + ".",
    )

    class Meta:
        model = CannedResponse
        fields = ["title", "step"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        step = self.fields["step"]
        assert isinstance(step, forms.ChoiceField)
        step.choices = [("", "Any step"), *Step.choices]
        if self.instance.pk and not self.is_bound:
            self.initial["variants_text"] = "\n---\n".join(self.instance.variants)

    def clean_variants_text(self) -> list[str]:
        try:
            return validate_variants(split_variants(self.cleaned_data["variants_text"]))
        except CannedError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        taken = CannedResponse.objects.filter(
            organization_id=self.instance.organization_id, title__iexact=title
        ).exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("There is already a canned response with this title.")
        return title

    def save(self, commit: bool = True) -> CannedResponse:
        self.instance.variants = self.cleaned_data["variants_text"]
        return super().save(commit=commit)


class ListField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        return _lines(str(value or ""))


class PriorityRulesForm(forms.ModelForm):
    keywords = ListField(required=False, help_text="One per line: each match adds 15 points.")
    hashtags = ListField(required=False, help_text="Without the #; each adds 18 points.")
    vip_handles = ListField(
        required=False,
        label="VIP handles",
        help_text="Customers' handles without the @: 40 points, and their replies need approval "
        "if the approval rule below says so.",
    )

    class Meta:
        model = PriorityRules
        fields = ["keywords", "hashtags", "vip_handles"]

    def clean_hashtags(self) -> list[str]:
        tags = [tag.lstrip("#") for tag in self.cleaned_data["hashtags"]]
        bad = [tag for tag in tags if not tag.replace("_", "").isalnum()]
        if bad:
            raise forms.ValidationError(f"Not a hashtag: {', '.join(bad)} (letters, digits, _).")
        return tags

    def clean_vip_handles(self) -> list[str]:
        handles = [handle.lstrip("@") for handle in self.cleaned_data["vip_handles"]]
        bad = [h for h in handles if not h.replace("_", "").replace(".", "").isalnum()]
        if bad:
            raise forms.ValidationError(f"Not a handle: {', '.join(bad)}.")
        return handles

    def save(self, commit: bool = True) -> PriorityRules:
        self.instance.clean_values()
        return super().save(commit=commit)


class ApprovalRulesForm(forms.ModelForm):
    legal_keywords = ListField(
        required=False, help_text="In the reply or the customer's messages: one per line."
    )
    brands = forms.ModelMultipleChoiceField(
        queryset=Brand.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Every reply for these brands needs approval.",
    )

    class Meta:
        model = ApprovalRules
        fields = ["legal_keywords", "vip_authors", "min_followers", "brands"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["brands"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = Brand.objects.filter(organization_id=self.instance.organization_id)
