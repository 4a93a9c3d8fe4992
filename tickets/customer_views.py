"""Customer profiles, the ticket's customer sidebar, merge and split, and the threading settings.

Plain function views: the page and its htmx partial from one view; every control a real form
that works without JavaScript (a redirect back), htmx swapping just the part that changed.
Another organisation's customer, identity or ticket is a 404.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.core.validators import MaxValueValidator
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Lower
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careinbox.accounts.models import Organization, Role, User
from careinbox.api.common import INT64
from careinbox.audit import record_change, snapshot
from careinbox.tenancy import OrgRequest, get_for_org_or_404, role_required
from channels_social.models import Platform
from tickets.models import (
    CONTACT_FIELDS,
    OPEN_STATUSES,
    Customer,
    CustomerIdentity,
    Direction,
    Message,
    PriorityRules,
    StepError,
    ThreadingSettings,
    Ticket,
    TicketEvent,
)
from tickets.services import customers as customer_services
from tickets.services import privacy
from tickets.services.customers import CustomerError
from tickets.services.merge import (
    merge_offer_dismiss,
    merge_offers,
    ticket_merge,
    ticket_split,
)

SIDEBAR_TICKETS = 5  # the customer's latest other tickets shown beside a ticket
LINK_SEARCH_RESULTS = 10


def _org(request: OrgRequest) -> Organization:
    assert request.organization is not None  # role_required let the request in
    return request.organization


def _user(request: OrgRequest) -> User:
    return cast(User, request.user)


def _wants_partial(request: OrgRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.boosted


# The customer list -------------------------------------------------------------------------------

CUSTOMERS_PER_PAGE = 25


class CustomerFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    platform = forms.ChoiceField(
        required=False, choices=[("", "Any platform"), *Platform.choices], label="Platform"
    )
    vip = forms.BooleanField(required=False, label="VIPs only")


def customers_matching(
    organization: Organization, *, q: str = "", platform: str = "", vip: bool = False
) -> QuerySet[Customer]:
    """The organisation's customers whose name, handle or contact details contain every word of
    ``q`` (an identity's handle or name, the customer's name, e-mail, phone or order number),
    with an identity on ``platform``, VIPs only (a handle on the priority rules' VIP list);
    each with its ticket counts and when it was last seen. A fixed number of queries."""
    identities = CustomerIdentity.objects.filter(customer=OuterRef("pk"))
    customers = Customer.objects.for_org(organization)
    for word in q.split():
        word = word.lstrip("@")
        if not word:
            continue
        customers = customers.filter(
            Q(display_name__icontains=word)
            | Q(email__icontains=word)
            | Q(phone__icontains=word)
            | Q(order_number__icontains=word)
            | Exists(
                identities.filter(Q(username__icontains=word) | Q(display_name__icontains=word))
            )
        )
    if platform:
        customers = customers.filter(Exists(identities.filter(platform=platform)))
    if vip:
        rules = PriorityRules.objects.filter(organization=organization).first()
        handles = [h.lower() for h in (rules.vip_handles if rules else [])]
        customers = customers.filter(
            Exists(identities.annotate(handle=Lower("username")).filter(handle__in=handles))
        )
    tickets = Ticket.objects.filter(customer=OuterRef("pk")).order_by().values("customer")
    return customers.annotate(
        ticket_count=Coalesce(Subquery(tickets.annotate(n=Count("pk")).values("n")), 0),
        open_count=Coalesce(
            Subquery(tickets.filter(status__in=OPEN_STATUSES).annotate(n=Count("pk")).values("n")),
            0,
        ),
        last_seen_at=Subquery(identities.order_by("-last_seen_at").values("last_seen_at")[:1]),
    ).order_by(F("last_seen_at").desc(nulls_last=True), "-pk")


@require_GET
@role_required()
def customer_list(request: OrgRequest) -> HttpResponse:
    """Every customer of the organisation, searchable by name, handle or contact details,
    filtered by platform and VIP, 25 a page, newest seen first; each links to the profile."""
    organization = _org(request)
    form = CustomerFilterForm(request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    customers = customers_matching(
        organization,
        q=data.get("q", ""),
        platform=data.get("platform", ""),
        vip=bool(data.get("vip")),
    ).prefetch_related(
        Prefetch("identities", queryset=CustomerIdentity.objects.order_by("platform", "pk"))
    )
    page = Paginator(customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    rules = PriorityRules.objects.filter(organization=organization).first()
    vips = {h.lower() for h in (rules.vip_handles if rules else [])}
    rows = [
        {
            "customer": customer,
            "identities": list(customer.identities.all()),
            "vip": any(i.username.lower() in vips for i in customer.identities.all()),
        }
        for customer in page.object_list
    ]
    kept = request.GET.copy()
    kept.pop("page", None)
    return render(
        request,
        "tickets/customers/list.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "query_string": kept.urlencode(),
            "filtered": any(data.get(k) for k in ("q", "platform", "vip")),
        },
    )


# The profile page -------------------------------------------------------------------------------


def _can_manage_data(request: OrgRequest) -> bool:
    """Export and erasure are for managers and admins."""
    membership = request.membership
    return membership is not None and membership.has_role(Role.MANAGER)


def _get_customer(request: OrgRequest, pk: int) -> Customer:
    return get_for_org_or_404(Customer.objects.all(), request.organization, pk=pk)


def _link_candidates(customer: Customer, query: str) -> list[CustomerIdentity]:
    """Identities of the organisation's other customers whose handle or name contains
    ``query``: the same person elsewhere, to link."""
    query = query.strip().lstrip("@")
    if not query:
        return []
    return list(
        CustomerIdentity.objects.for_org(customer.organization)
        .exclude(customer=customer)
        .filter(Q(username__icontains=query) | Q(display_name__icontains=query))
        .select_related("customer")
        .order_by("username", "pk")[:LINK_SEARCH_RESULTS]
    )


def _profile_context(customer: Customer, *, query: str = "", **extra: Any) -> dict[str, Any]:
    identities = customer_services.identities_of(customer)
    lines = customer_services.tickets_of(customer)
    return {
        "customer": customer,
        "identities": identities,
        "reach": sum(view.identity.followers for view in identities),
        "verified": any(view.identity.verified for view in identities),
        "ticket_lines": lines,
        "open_count": sum(1 for line in lines if line.ticket.is_open),
        "notes": list(customer.notes.select_related("author")),
        "history": list(customer.events.select_related("actor")),
        "query": query,
        "link_candidates": _link_candidates(customer, query),
        "contact_form": ContactForm(initial={f: getattr(customer, f) for f in CONTACT_FIELDS}),
        "erase_word": ERASE_WORD,
        **extra,
    }


@require_GET
@role_required()
def customer_profile(request: OrgRequest, pk: int) -> HttpResponse:
    customer = _get_customer(request, pk)
    context = _profile_context(customer, query=request.GET.get("q", ""))
    context["can_manage_data"] = _can_manage_data(request)
    template = "tickets/customers/profile.html"
    if _wants_partial(request) and request.GET.get("part") == "link":
        template += "#link-search"
    return render(request, template, context)


class ContactForm(forms.Form):
    email = forms.EmailField(required=False, label="E-mail")
    phone = forms.CharField(required=False, max_length=40)
    order_number = forms.CharField(required=False, max_length=100, label="Order number")


def _back_to_profile(request: OrgRequest, customer: Customer, **extra: Any) -> HttpResponse:
    """After a change: the profile again (htmx: the page's body; else a redirect)."""
    extra.setdefault("can_manage_data", _can_manage_data(request))
    if _wants_partial(request) or extra.get("error"):
        context = _profile_context(customer, **extra)
        template = "tickets/customers/profile.html"
        if _wants_partial(request):
            template += "#profile"
        return render(request, template, context, status=422 if extra.get("error") else 200)
    return redirect("tickets:customer", pk=customer.pk)


@require_POST
@role_required()
def customer_contact(request: OrgRequest, pk: int) -> HttpResponse:
    customer = _get_customer(request, pk)
    form = ContactForm(request.POST)
    if not form.is_valid():
        return _back_to_profile(
            request, customer, error="Check the contact details.", contact_form=form
        )
    try:
        customer_services.customer_update_contact(
            customer=customer, by=_user(request), **form.cleaned_data
        )
    except CustomerError as exc:
        return _back_to_profile(request, customer, error=str(exc), contact_form=form)
    messages.success(request, "Contact details saved.")
    return _back_to_profile(request, customer)


@require_POST
@role_required()
def customer_note(request: OrgRequest, pk: int) -> HttpResponse:
    customer = _get_customer(request, pk)
    try:
        customer_services.customer_add_note(
            customer=customer, by=_user(request), text=request.POST.get("text", "")
        )
    except CustomerError as exc:
        return _back_to_profile(request, customer, error=str(exc))
    return _back_to_profile(request, customer)


# Data protection: export and erasure (managers and admins) --------------------------------------

ERASE_WORD = "ERASE"


@require_GET
@role_required(Role.MANAGER)
def customer_export(request: OrgRequest, pk: int) -> HttpResponse:
    """Everything held about the customer, as a JSON download (audited)."""
    customer = _get_customer(request, pk)
    data = privacy.customer_export(customer=customer, by=_user(request))
    response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}.json"'
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@role_required(Role.MANAGER)
def customer_erase(request: OrgRequest, pk: int) -> HttpResponse:
    """Erase what identifies the customer, once the manager typed the confirmation word."""
    customer = _get_customer(request, pk)
    if request.POST.get("confirm", "").strip() != ERASE_WORD:
        return _back_to_profile(
            request,
            customer,
            error=f"Type {ERASE_WORD} to confirm the erasure; nothing was erased.",
        )
    try:
        privacy.customer_erase(customer=customer, by=_user(request))
    except privacy.ErasureError as exc:
        return _back_to_profile(request, customer, error=str(exc))
    messages.success(
        request, "Their personal data is erased; their tickets still count in the figures."
    )
    return _back_to_profile(request, Customer.objects.get(pk=customer.pk))


def _get_identity(request: OrgRequest, raw: str | int | None) -> CustomerIdentity:
    try:
        identity_id = int(str(raw))
    except ValueError:
        identity_id = 0
    return get_for_org_or_404(
        CustomerIdentity.objects.select_related("customer"), request.organization, pk=identity_id
    )


@require_POST
@role_required()
def customer_link(request: OrgRequest, pk: int) -> HttpResponse:
    customer = _get_customer(request, pk)
    identity = _get_identity(request, request.POST.get("identity"))
    try:
        customer_services.customer_link(customer=customer, identity=identity, by=_user(request))
    except CustomerError as exc:
        return _back_to_profile(request, customer, error=str(exc))
    messages.success(request, f"Linked {identity} to this customer.")
    return _back_to_profile(request, customer)


@require_POST
@role_required()
def customer_unlink(request: OrgRequest, pk: int, identity_id: int) -> HttpResponse:
    customer = _get_customer(request, pk)
    identity = _get_identity(request, identity_id)
    try:
        alone = customer_services.customer_unlink(
            customer=customer, identity=identity, by=_user(request)
        )
    except CustomerError as exc:
        return _back_to_profile(request, customer, error=str(exc))
    messages.success(request, f"Unlinked {identity}: it is customer #{alone.pk} now.")
    return _back_to_profile(request, customer)


# The ticket's customer sidebar, merge and split ---------------------------------------------------


def _get_ticket(request: OrgRequest, pk: int) -> Ticket:
    return get_for_org_or_404(
        Ticket.objects.select_related("customer", "social_account", "root_message"),
        request.organization,
        pk=pk,
    )


def sidebar_context(
    ticket: Ticket,
    *,
    conversation: list[Message] | None = None,
    events: list[TicketEvent] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What the customer sidebar beside a ticket shows: the person, their other tickets, the
    merge offers ingest made, and what can be split out (a fixed number of queries).

    The ticket page has the ticket's whole ``conversation`` and ``events`` loaded already
    (ordered by time): given them, the sidebar reads its messages, the opening post and the
    merge offers from them instead of asking again."""
    if conversation is None:
        conversation = list(
            ticket.messages.filter(direction=Direction.INBOUND).order_by("created_at", "pk")
        )
    elif ticket.root_message_id is not None and not Ticket.root_message.is_cached(ticket):
        root = next((m for m in conversation if m.pk == ticket.root_message_id), None)
        if root is not None:
            ticket.root_message = root  # the same row (the post's link needs it): no query
    customer = ticket.customer
    identities = customer_services.identities_of(customer) if customer is not None else []
    others: list[Ticket] = []
    if customer is not None:
        others = list(
            Ticket.objects.filter(customer=customer)
            .exclude(pk=ticket.pk)
            .order_by("-opened_at", "-pk")[:SIDEBAR_TICKETS]
        )
    splittable = [
        message
        for message in conversation
        if message.direction == Direction.INBOUND and message.pk != ticket.root_message_id
    ]
    return {
        "ticket": ticket,
        "customer": customer,
        "identities": identities,
        "reach": sum(view.identity.followers for view in identities),
        "verified": any(view.identity.verified for view in identities),
        "post_url": customer_services.post_url(ticket),
        "other_tickets": others,
        "merge_targets": [
            t
            for t in others
            if t.status in OPEN_STATUSES and t.platform == ticket.platform and not t.merged_into_id
        ],
        "merge_offers": merge_offers(ticket, events=events),
        "splittable": splittable,
        **extra,
    }


def _sidebar(request: OrgRequest, ticket: Ticket, **extra: Any) -> HttpResponse:
    error = extra.get("sidebar_error")
    return render(
        request,
        "tickets/partials/customer_sidebar.html",
        sidebar_context(ticket, **extra),
        status=422 if error else 200,
    )


@require_GET
@role_required()
def ticket_customer_sidebar(request: OrgRequest, pk: int) -> HttpResponse:
    return _sidebar(request, _get_ticket(request, pk))


def _after_ticket_change(
    request: OrgRequest, ticket: Ticket, *, go_to: Ticket, note: str
) -> HttpResponse:
    """After a merge or split: to the ticket the agent works on next (htmx: a full load)."""
    if _wants_partial(request):
        response = HttpResponse(status=204)
        response["HX-Location"] = reverse("tickets:detail", args=[go_to.pk])
        return response
    messages.success(request, note)
    return redirect("tickets:detail", pk=go_to.pk)


def _refused(request: OrgRequest, ticket: Ticket, error: str) -> HttpResponse:
    if _wants_partial(request):
        return _sidebar(request, ticket, sidebar_error=error)
    messages.error(request, error)
    return redirect("tickets:detail", pk=ticket.pk)


@require_POST
@role_required()
def ticket_merge_into(request: OrgRequest, pk: int) -> HttpResponse:
    """Merge this ticket (B) into the one named by ``target`` (A)."""
    source = _get_ticket(request, pk)
    raw = request.POST.get("target", "").strip().lstrip("#")
    if not raw.isdigit():
        return _refused(request, source, "Give the number of the ticket to merge this one into.")
    target = get_for_org_or_404(Ticket.objects.all(), request.organization, pk=int(raw))
    try:
        ticket_merge(target=target, source=source, by=_user(request))
    except StepError as exc:
        return _refused(request, source, str(exc))
    return _after_ticket_change(
        request, source, go_to=target, note=f"Ticket #{source.pk} merged into #{target.pk}."
    )


@require_POST
@role_required()
def ticket_split_out(request: OrgRequest, pk: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    try:
        ids = [int(value) for value in request.POST.getlist("message")]
    except ValueError:
        ids = []
    # An id no row can hold names no message (SQLite cannot even compare one).
    ids = [value for value in ids if 0 < value <= INT64]
    try:
        new = ticket_split(ticket=ticket, message_ids=ids, by=_user(request))
    except StepError as exc:
        return _refused(request, ticket, str(exc))
    return _after_ticket_change(
        request, ticket, go_to=new, note=f"Split into a new ticket, #{new.pk}."
    )


@require_POST
@role_required()
def ticket_merge_offer_dismiss(request: OrgRequest, pk: int, candidate_id: int) -> HttpResponse:
    ticket = _get_ticket(request, pk)
    merge_offer_dismiss(ticket=ticket, candidate_id=candidate_id, by=_user(request))
    if _wants_partial(request):
        return _sidebar(request, ticket)
    return redirect("tickets:detail", pk=ticket.pk)


# Threading settings (organisation admins) --------------------------------------------------------

THREADING_FIELDS = (
    "duplicate_window_hours",
    "join_similarity",
    "offer_similarity",
    "reopen_window_days",
)


class ThreadingSettingsForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = ThreadingSettings
        fields = THREADING_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("join_similarity", "offer_similarity"):
            self.fields[name].validators.append(MaxValueValidator(100))
            cast(forms.IntegerField, self.fields[name]).max_value = 100

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        join, offer = data.get("join_similarity"), data.get("offer_similarity")
        if join is not None and offer is not None and offer > join:
            self.add_error(
                "offer_similarity",
                "The merge-offer threshold cannot be above the join threshold: a match "
                "that joins is also one that would be offered.",
            )
        return data


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def threading_settings(request: OrgRequest) -> HttpResponse:
    organization = _org(request)
    current = ThreadingSettings.for_org_id(organization.pk)
    if request.method == "POST":
        before = snapshot(current, THREADING_FIELDS) if current.pk else {}
        form = ThreadingSettingsForm(request.POST, instance=current)
        if form.is_valid():
            with transaction.atomic():
                saved = form.save()
                record_change(
                    organization,
                    request.user,
                    "updated" if before else "created",
                    saved,
                    object_type="threading settings",
                    before=before,
                    after=snapshot(saved, THREADING_FIELDS),
                )
            messages.success(request, "Threading settings saved.")
            return redirect("tickets:settings-threading")
        status = 422
    else:
        form = ThreadingSettingsForm(instance=current)
        status = 200
    return render(
        request, "tickets/customers/threading_settings.html", {"form": form}, status=status
    )
