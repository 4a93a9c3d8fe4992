"""The rule form, built from the registry of condition kinds and a fixed number of levels."""

from __future__ import annotations

from typing import Any

from django import forms

from careinbox.accounts.models import Organization, Team, User
from careinbox.notifications.webhooks import webhook_problem
from monitoring.escalation.actions import ROLE_CHOICES
from monitoring.escalation.conditions import ConditionKind, condition_kind, condition_kinds
from monitoring.models import EscalationRule
from tickets.models import Priority, Tag

MAX_LEVELS = 3
MAX_AFTER_MINUTES = 60 * 24 * 14

# The level's fields, in the order the form shows them.
ACTION_FIELDS = (
    "notify_roles",
    "notify_users",
    "notify_teams",
    "notify_assignee",
    "email",
    "webhook_url",
    "assign_team",
    "assign_user",
    "raise_priority",
    "require_approval",
    "add_tag",
)


class _MemberChoice(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.get_full_name() or obj.username)


class _MembersChoice(forms.ModelMultipleChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.get_full_name() or obj.username)


def _level_fields(organization: Organization, number: int) -> dict[str, forms.Field]:
    users = User.objects.filter(
        memberships__organization=organization, memberships__is_active=True
    ).order_by("username")
    teams = Team.objects.filter(organization=organization).order_by("name")
    checkboxes = forms.CheckboxSelectMultiple
    return {
        "after_minutes": forms.IntegerField(
            label="After (minutes the conditions have held)",
            min_value=0,
            max_value=MAX_AFTER_MINUTES,
            required=number == 1,
            initial=0 if number == 1 else None,
            help_text="" if number == 1 else "Empty: no such level.",
        ),
        "notify_roles": forms.MultipleChoiceField(
            label="Notify everyone who is", choices=ROLE_CHOICES, required=False, widget=checkboxes
        ),
        "notify_users": _MembersChoice(
            label="Notify these people", queryset=users, required=False, widget=checkboxes
        ),
        "notify_teams": forms.ModelMultipleChoiceField(
            label="Notify these teams", queryset=teams, required=False, widget=checkboxes
        ),
        "notify_assignee": forms.BooleanField(label="Notify the assignee", required=False),
        "email": forms.BooleanField(label="Also by e-mail", required=False),
        "webhook_url": forms.CharField(
            label="Chat webhook (Slack-compatible incoming webhook URL)",
            required=False,
            max_length=500,
            widget=forms.URLInput,
        ),
        "assign_team": forms.ModelChoiceField(
            label="Assign to team", queryset=teams, required=False
        ),
        "assign_user": _MemberChoice(label="Assign to person", queryset=users, required=False),
        "raise_priority": forms.TypedChoiceField(
            label="Raise priority to",
            choices=[("", "—"), *Priority.choices],
            coerce=int,
            empty_value=None,
            required=False,
        ),
        "require_approval": forms.BooleanField(
            label="Replies need a manager's approval", required=False
        ),
        "add_tag": forms.CharField(label="Add tag", required=False, max_length=60),
    }


def _actions_from(data: dict[str, Any]) -> dict[str, Any]:
    """A level's actions as stored: ids for people and teams, only what is set."""
    actions: dict[str, Any] = {}
    if data.get("notify_roles"):
        actions["notify_roles"] = sorted(data["notify_roles"])
    if data.get("notify_users"):
        actions["notify_users"] = sorted(user.pk for user in data["notify_users"])
    if data.get("notify_teams"):
        actions["notify_teams"] = sorted(team.pk for team in data["notify_teams"])
    for flag in ("notify_assignee", "email", "require_approval"):
        if data.get(flag):
            actions[flag] = True
    if data.get("webhook_url"):
        actions["webhook_url"] = data["webhook_url"].strip()
    if data.get("assign_team"):
        actions["assign_team"] = data["assign_team"].pk
    if data.get("assign_user"):
        actions["assign_user"] = data["assign_user"].pk
    if data.get("raise_priority"):
        actions["raise_priority"] = int(data["raise_priority"])
    tag = Tag.normalise(data.get("add_tag") or "")
    if tag:
        actions["add_tag"] = tag
    return actions


def _initial_from(actions: dict[str, Any]) -> dict[str, Any]:
    initial = dict(actions)
    return initial


class EscalationRuleForm(forms.Form):
    """Name, on/off and order; one group of fields per registered condition kind (all that are
    filled in must hold); up to ``MAX_LEVELS`` levels, each with its minutes and actions."""

    name = forms.CharField(max_length=100)
    enabled = forms.BooleanField(required=False, initial=True)
    position = forms.IntegerField(
        min_value=0, initial=0, label="Order", help_text="Lower is evaluated first."
    )

    def __init__(
        self,
        *args: Any,
        organization: Organization,
        rule: EscalationRule | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.organization = organization
        self.rule = rule
        self.conditions: list[dict[str, Any]] = []
        self.levels: list[dict[str, Any]] = []
        self._condition_names: list[tuple[ConditionKind, dict[str, str]]] = []
        for kind in condition_kinds():
            names = {}
            for short, field in kind.form_fields(organization).items():
                names[short] = f"c_{kind.key}_{short}"
                self.fields[names[short]] = field
            self._condition_names.append((kind, names))
        self._level_names: list[dict[str, str]] = []
        for number in range(1, MAX_LEVELS + 1):
            names = {}
            for short, field in _level_fields(organization, number).items():
                names[short] = f"l{number}_{short}"
                self.fields[names[short]] = field
            self._level_names.append(names)
        if rule is not None and not self.is_bound:
            self._load(rule)

    def _load(self, rule: EscalationRule) -> None:
        self.initial.update(name=rule.name, enabled=rule.enabled, position=rule.position)
        by_kind = {kind.key: names for kind, names in self._condition_names}
        for params in rule.conditions:
            kind = condition_kind(str(params.get("kind", "")))
            if kind is None or kind.key not in by_kind:
                continue
            for short, value in kind.initial(params).items():
                if short in by_kind[kind.key]:
                    self.initial[by_kind[kind.key][short]] = value
        for names, level in zip(self._level_names, rule.levels, strict=False):
            self.initial[names["after_minutes"]] = level.get("after_minutes", 0)
            for short, value in _initial_from(level.get("actions") or {}).items():
                if short in names:
                    self.initial[names[short]] = value

    # For the template: the fields grouped as the page shows them.
    def condition_groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [
            (kind.label, [self[name] for name in names.values()])
            for kind, names in self._condition_names
        ]

    def level_groups(self) -> list[tuple[int, list[forms.BoundField]]]:
        return [
            (number, [self[names[short]] for short in ("after_minutes", *ACTION_FIELDS)])
            for number, names in enumerate(self._level_names, start=1)
        ]

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        clash = EscalationRule.objects.filter(organization=self.organization, name__iexact=name)
        if self.rule is not None:
            clash = clash.exclude(pk=self.rule.pk)
        if clash.exists():
            raise forms.ValidationError("Another rule has this name.", code="duplicate")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self.conditions = []
        for kind, names in self._condition_names:
            params = kind.params({short: data.get(name) for short, name in names.items()})
            if params is not None:
                self.conditions.append({"kind": kind.key, **params})
        if not self.conditions:
            raise forms.ValidationError(
                "Give the rule at least one condition: without any it would escalate every "
                "open ticket."
            )
        self.levels = []
        previous: int | None = None
        for number, names in enumerate(self._level_names, start=1):
            after = data.get(names["after_minutes"])
            fields = {short: data.get(name) for short, name in names.items()}
            actions = _actions_from(fields)
            if after is None:
                if actions:
                    self.add_error(
                        names["after_minutes"], "Say after how many minutes this level acts."
                    )
                continue
            if len(self.levels) != number - 1:
                self.add_error(names["after_minutes"], f"Fill in level {number - 1} first.")
                continue
            if previous is not None and after <= previous:
                self.add_error(
                    names["after_minutes"],
                    f"Level {number} must come later than level {number - 1} ({previous} min).",
                )
            if not actions:
                self.add_error(names["after_minutes"], f"Give level {number} at least one action.")
            if actions.get("webhook_url"):
                problem = webhook_problem(actions["webhook_url"])
                if problem:
                    self.add_error(names["webhook_url"], problem)
            self.levels.append({"after_minutes": after, "actions": actions})
            previous = after
        return data

    def save(self) -> EscalationRule:
        rule = self.rule or EscalationRule(organization=self.organization)
        rule.name = self.cleaned_data["name"]
        rule.enabled = self.cleaned_data["enabled"]
        rule.position = self.cleaned_data["position"]
        rule.conditions = self.conditions
        rule.levels = self.levels
        rule.save()
        return rule


class DryRunForm(EscalationRuleForm):
    """The rule form for a dry run: only the conditions count (no name or level needed)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("name", "position"):
            self.fields[name].required = False
        for names in self._level_names:
            self.fields[names["after_minutes"]].required = False

    def clean_name(self) -> str:
        return str(self.cleaned_data.get("name") or "")

    def clean(self) -> dict[str, Any]:
        data = forms.Form.clean(self) or {}
        self.conditions = []
        for kind, names in self._condition_names:
            params = kind.params({short: data.get(name) for short, name in names.items()})
            if params is not None:
                self.conditions.append({"kind": kind.key, **params})
        if not self.conditions:
            raise forms.ValidationError("Give at least one condition to try.")
        return data
