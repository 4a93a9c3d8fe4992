"""The tickets part of the REST API: tickets, their messages and timeline, and the actions an agent
takes on them (care steps sent through the same outbox as the inbox, assignment, priority, tags)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import filters, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from careinbox.accounts.models import Membership, Role, Team
from careinbox.api.auth import HasRole
from careinbox.api.common import (
    DateTimeFilter,
    IntegerFilter,
    OrgScopedMixin,
    Pagination,
    StrictCharField,
    StrictEmailField,
    StrictFilterSet,
)
from tickets.customer_models import Customer, CustomerIdentity
from tickets.models import (
    OPEN_STATUSES,
    ApprovalRequest,
    Message,
    Note,
    Priority,
    Status,
    Step,
    StepError,
    Tag,
    Ticket,
    TicketEvent,
)
from tickets.services import privacy, ticket_take_step
from tickets.services.customers import CustomerError, customer_update_contact
from tickets.services.steps import GuardRefused
from tickets.services.teamwork import TeamworkError, assignment_refusal, note_add


class CustomerSerializer(serializers.Serializer):
    external_id = serializers.CharField(source="customer_external_id")
    username = serializers.CharField(source="customer_username")
    display_name = serializers.CharField(source="customer_display_name")
    followers = serializers.IntegerField(source="customer_followers")


class TicketSerializer(serializers.ModelSerializer):
    priority_label = serializers.CharField(source="get_priority_display", read_only=True)
    brand_name = serializers.CharField(source="brand.name", read_only=True)
    handle = serializers.CharField(source="social_account.username", read_only=True)
    customer = CustomerSerializer(source="*", read_only=True)
    next_step = serializers.CharField(read_only=True, allow_null=True)
    tags = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = Ticket
        fields = [
            "id",
            "status",
            "priority",
            "priority_label",
            "priority_reasons",
            "platform",
            "brand",
            "brand_name",
            "social_account",
            "handle",
            "customer",
            "conversation_id",
            "is_public",
            "assigned_to",
            "team",
            "tags",
            "approval_required",
            "next_step",
            "sla_due_at",
            "opened_at",
            "closed_at",
            "updated_at",
        ]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    delivery = serializers.SerializerMethodField()
    # Found by schemathesis: a customer's message has no step (""), which the model's choices
    # do not list, so the schema's enum did not allow it.
    step = serializers.CharField(
        read_only=True,
        help_text="The care step a reply took (acknowledge, take_offline, resolve, close_out); "
        "empty for a customer's message.",
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "kind",
            "direction",
            "is_public",
            "step",
            "text",
            "author_username",
            "author_display_name",
            "author_followers",
            "external_id",
            "in_reply_to_external_id",
            "found_by",
            "created_at",
            "delivery",
        ]
        read_only_fields = fields

    def get_delivery(self, message: Message) -> str | None:
        """The outbox state of a reply (queued, sending, sent, refused, failed, uncertain)."""
        outbox = getattr(message, "outbox", None)
        return outbox.state if outbox is not None else None


class EventSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)
    actor = serializers.StringRelatedField(read_only=True)

    class Meta:
        model = TicketEvent
        fields = ["id", "kind", "label", "at", "actor", "message", "data"]
        read_only_fields = fields


class StepRequestSerializer(serializers.Serializer):
    step = serializers.ChoiceField(choices=Step.choices)
    text = serializers.CharField(max_length=20000, trim_whitespace=True)
    confirm_warnings = serializers.BooleanField(
        default=False,
        help_text="Send despite the reply guard's warnings (a 409 lists them first).",
    )
    override_guard = serializers.BooleanField(
        default=False,
        help_text="Managers: send despite a blocking flag that allows an override (recorded).",
    )


class ApprovalSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApprovalRequest
        fields = ["id", "step", "text", "reasons", "state", "requested_at"]
        read_only_fields = fields


class StepResultSerializer(serializers.Serializer):
    """Either the reply, queued for the outbox, or the approval request it waits in."""

    message = MessageSerializer(allow_null=True)
    held_for_approval = ApprovalSerializer(allow_null=True)


class AssignRequestSerializer(serializers.Serializer):
    user = serializers.IntegerField(
        allow_null=True, min_value=1, help_text="user id; null: unassign"
    )
    team = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class PriorityRequestSerializer(serializers.Serializer):
    priority = serializers.ChoiceField(choices=Priority.choices)
    reason = serializers.CharField(max_length=200)


class TagRequestSerializer(serializers.Serializer):
    tag = serializers.CharField(max_length=60)


class NoteSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True)
    mentions = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)

    class Meta:
        model = Note
        fields = ["id", "ticket", "author", "body", "mentions", "created_at"]
        read_only_fields = fields


class NoteRequestSerializer(serializers.Serializer):
    body = StrictCharField(
        max_length=20000, help_text="Internal only; each @username of a colleague notifies them."
    )


class TicketFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    open = django_filters.BooleanFilter(method="filter_open", label="only open tickets")
    tag = django_filters.CharFilter(field_name="tags__name", label="tag name")
    opened_after = DateTimeFilter(field_name="opened_at", lookup_expr="gte")
    opened_before = DateTimeFilter(field_name="opened_at", lookup_expr="lt")
    min_followers = IntegerFilter(field_name="customer_followers", lookup_expr="gte")
    # Ids as plain numbers: an id that is not yours matches nothing (rather than a 400 that
    # would tell that it exists elsewhere).
    brand = IntegerFilter(field_name="brand_id")
    assigned_to = IntegerFilter(field_name="assigned_to_id")
    team = IntegerFilter(field_name="team_id")

    class Meta:
        model = Ticket
        fields = ["status", "priority", "platform", "brand", "assigned_to", "team", "is_public"]

    def filter_open(self, queryset: QuerySet[Ticket], name: str, value: bool) -> QuerySet[Ticket]:
        return (
            queryset.filter(status__in=OPEN_STATUSES)
            if value
            else queryset.exclude(status__in=OPEN_STATUSES)
        )


def _error(detail: str, code: str, http_status: int = status.HTTP_409_CONFLICT) -> Response:
    return Response({"detail": detail, "code": code}, status=http_status)


class TicketViewSet(OrgScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Tickets of your organisation (another organisation's ticket is a 404)."""

    queryset = (
        Ticket.objects.select_related("brand", "social_account")
        .prefetch_related("tags")
        .order_by("-opened_at", "-pk")
    )
    serializer_class = TicketSerializer
    permission_classes = [HasRole]
    pagination_class = Pagination
    filterset_class = TicketFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, filters.OrderingFilter]
    ordering_fields = ["opened_at", "priority", "sla_due_at", "sla_risk_at", "updated_at", "id"]

    def get_queryset(self) -> Any:
        return (
            super().get_queryset().distinct()
            if "tag" in self.request.query_params
            else super().get_queryset()
        )

    @extend_schema(
        responses=MessageSerializer(many=True), summary="The ticket's conversation, oldest first"
    )
    @action(detail=True, methods=["get"], pagination_class=Pagination, filter_backends=[])
    def messages(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        queryset = ticket.messages.select_related("outbox").order_by("created_at", "pk")
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(MessageSerializer(page, many=True).data)

    @extend_schema(
        responses=EventSerializer(many=True), summary="The ticket's timeline, oldest first"
    )
    @action(detail=True, methods=["get"], pagination_class=Pagination, filter_backends=[])
    def events(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        queryset = ticket.events.select_related("actor").order_by("at", "pk")
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(EventSerializer(page, many=True).data)

    @extend_schema(
        methods=["GET"],
        responses=NoteSerializer(many=True),
        summary="The ticket's internal notes, oldest first",
    )
    @extend_schema(
        methods=["POST"],
        request=NoteRequestSerializer,
        responses={201: NoteSerializer},
        summary="Add an internal note through the ticket page's service (@username notifies "
        "that colleague)",
    )
    @action(detail=True, methods=["get", "post"], pagination_class=Pagination, filter_backends=[])
    def notes(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        if request.method == "GET":
            queryset = (
                ticket.notes.select_related("author").prefetch_related("mentions").order_by("pk")
            )
            page = self.paginate_queryset(queryset)
            return self.get_paginated_response(NoteSerializer(page, many=True).data)
        data = NoteRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            note = note_add(ticket=ticket, by=request.user, body=data.validated_data["body"])  # type: ignore[arg-type]
        except TeamworkError as error:
            return _error(str(error), "invalid_note", 400)
        note = Note.objects.select_related("author").prefetch_related("mentions").get(pk=note.pk)
        return Response(NoteSerializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=StepRequestSerializer,
        responses={202: StepResultSerializer},
        summary="Take the ticket's next care step: the reply goes out through the outbox "
        "(or waits for a manager's approval); the reply guard's flags come back as a 409",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def steps(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = StepRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = ticket_take_step(
                ticket=ticket,
                step=data.validated_data["step"],
                by=request.user,
                text=data.validated_data["text"],
                confirm_warnings=data.validated_data["confirm_warnings"],
                override_guard=data.validated_data["override_guard"],
            )
        except GuardRefused as refused:
            return Response(
                {
                    "detail": str(refused),
                    "code": "reply_guard",
                    "needs_confirmation": refused.needs_confirmation,
                    "flags": [
                        {"code": flag.code, "severity": flag.severity, "why": flag.why}
                        for flag in refused.flags
                    ],
                },
                status=status.HTTP_409_CONFLICT,
            )
        except StepError as error:
            return _error(str(error), "step_refused")
        if isinstance(result, ApprovalRequest):
            body = {"message": None, "held_for_approval": ApprovalSerializer(result).data}
        else:
            message = Message.objects.select_related("outbox").get(pk=result.pk)
            body = {"message": MessageSerializer(message).data, "held_for_approval": None}
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=AssignRequestSerializer, responses=TicketSerializer, summary="Assign or unassign"
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = AssignRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        organization = request.organization  # type: ignore[attr-defined]
        user = None
        if data.validated_data["user"] is not None:
            member = (
                Membership.objects.filter(
                    organization=organization, user_id=data.validated_data["user"], is_active=True
                )
                .select_related("user")
                .first()
            )
            if member is None:
                return _error(
                    "No active member of your organisation has that id.", "unknown_user", 400
                )
            user = member.user
        kwargs: dict[str, Any] = {}
        if "team" in data.validated_data:
            team_id = data.validated_data["team"]
            team = (
                Team.objects.filter(organization=organization, pk=team_id).first()
                if team_id
                else None
            )
            if team_id and team is None:
                return _error("Your organisation has no team with that id.", "unknown_team", 400)
            kwargs["team"] = team
        with transaction.atomic():
            locked = Ticket.objects.select_for_update(of=("self",)).get(pk=ticket.pk)
            refusal = assignment_refusal(
                holder_id=locked.assigned_to_id,
                assignee_id=user.pk if user is not None else None,
                by=request.membership,  # type: ignore[attr-defined]
            )
            if refusal:
                return _error(refusal, "permission_denied", status.HTTP_403_FORBIDDEN)
            locked.assign(user, by=request.user, reason=data.validated_data["reason"], **kwargs)
        return Response(TicketSerializer(self.get_object()).data)

    @extend_schema(
        request=PriorityRequestSerializer,
        responses=TicketSerializer,
        summary="Override the priority",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def priority(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = PriorityRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket.change_priority(
            int(data.validated_data["priority"]),
            by=request.user,
            reason=data.validated_data["reason"],
        )
        return Response(TicketSerializer(self.get_object()).data)

    @extend_schema(request=TagRequestSerializer, responses=TicketSerializer, summary="Add a tag")
    @action(detail=True, methods=["post"], filter_backends=[])
    def tags(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = TagRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not Tag.normalise(data.validated_data["tag"]):
            return _error("A tag needs at least one letter or digit.", "invalid_tag", 400)
        ticket.add_tag(data.validated_data["tag"], by=request.user)
        return Response(TicketSerializer(self.get_object()).data)

    @extend_schema(request=TagRequestSerializer, responses=TicketSerializer, summary="Remove a tag")
    @action(detail=True, methods=["post"], url_path="tags/remove", filter_backends=[])
    def remove_tag(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = TagRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket.remove_tag(data.validated_data["tag"], by=request.user)
        return Response(TicketSerializer(self.get_object()).data)


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomerIdentity
        fields = [
            "id",
            "platform",
            "external_id",
            "username",
            "display_name",
            "followers",
            "verified",
            "first_seen_at",
            "last_seen_at",
        ]
        read_only_fields = fields


class CustomerProfileSerializer(serializers.ModelSerializer):
    identities = IdentitySerializer(many=True, read_only=True)

    class Meta:
        model = Customer
        fields = [
            "id",
            "display_name",
            "email",
            "phone",
            "order_number",
            "identities",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "display_name", "identities", "created_at", "updated_at"]


class ContactRequestSerializer(serializers.Serializer):
    email = StrictEmailField(required=False, allow_blank=True, max_length=254)
    phone = StrictCharField(required=False, allow_blank=True, max_length=40)
    order_number = StrictCharField(required=False, allow_blank=True, max_length=100)


class CustomerFilter(StrictFilterSet):
    platform = django_filters.CharFilter(
        field_name="identities__platform", distinct=True, label="has an identity on"
    )

    class Meta:
        model = Customer
        fields = ["platform"]


class CustomerViewSet(
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Customers of your organisation: their identities on each platform, the contact details
    taken offline (changed through the same service as the profile page, each change a
    customer event), and their tickets."""

    queryset = Customer.objects.prefetch_related("identities").order_by("pk")
    serializer_class = CustomerProfileSerializer
    permission_classes = [HasRole]
    pagination_class = Pagination
    filterset_class = CustomerFilter
    filter_backends = [
        django_filters.rest_framework.DjangoFilterBackend,
        filters.SearchFilter,
        filters.OrderingFilter,
    ]
    search_fields = ["display_name", "email", "order_number", "identities__username"]
    ordering_fields = ["id", "created_at", "updated_at", "display_name"]
    http_method_names = ["get", "post", "patch", "head", "options"]
    # A person's data request (export everything, erase what identifies them): managers up.
    action_roles = {"export": Role.MANAGER, "erase": Role.MANAGER}

    @extend_schema(
        request=ContactRequestSerializer,
        responses=CustomerProfileSerializer,
        summary="Change contact details (send only those to change; empty clears one)",
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        customer = self.get_object()
        data = ContactRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = {
            "email": customer.email,
            "phone": customer.phone,
            "order_number": customer.order_number,
            **data.validated_data,
        }
        try:
            customer_update_contact(customer=customer, by=request.user, **values)  # type: ignore[arg-type]
        except CustomerError as error:
            return _error(str(error), "invalid_contact", 400)
        return Response(CustomerProfileSerializer(self.get_object()).data)

    @extend_schema(
        responses=TicketSerializer(many=True), summary="The customer's tickets, newest first"
    )
    @action(detail=True, methods=["get"], pagination_class=Pagination, filter_backends=[])
    def tickets(self, request: Request, pk: str | None = None) -> Response:
        customer = self.get_object()
        queryset = (
            Ticket.objects.filter(organization=customer.organization_id, customer=customer)
            .select_related("brand", "social_account")
            .prefetch_related("tags")
            .order_by("-opened_at", "-pk")
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(TicketSerializer(page, many=True).data)

    @extend_schema(
        responses={200: dict}, summary="Everything held about the customer, as JSON (audited)"
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def export(self, request: Request, pk: str | None = None) -> Response:
        customer = self.get_object()
        return Response(privacy.customer_export(customer=customer, by=request.user))

    @extend_schema(
        request=None,
        responses={200: dict},
        summary="Erase what identifies the customer; their tickets stay counted (audited)",
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def erase(self, request: Request, pk: str | None = None) -> Response:
        customer = self.get_object()
        try:
            figures = privacy.customer_erase(customer=customer, by=request.user)
        except privacy.ErasureError as error:
            return _error(str(error), "already_erased")
        return Response({"erased": figures})


class TagViewSet(OrgScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = Tag.objects.order_by("name")
    permission_classes = [HasRole]
    pagination_class = Pagination

    class serializer_class(serializers.ModelSerializer):
        class Meta:
            model = Tag
            fields = ["id", "name"]


__all__ = ["CustomerViewSet", "TagViewSet", "TicketViewSet"]
