"""The "Outbound webhooks" settings section (admins): endpoints, their secrets, the delivery log."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from careinbox.accounts.models import Organization, Role, User
from careinbox.tenancy import OrgRequest, get_for_org_or_404, role_required
from monitoring.webhooks.forms import WebhookEndpointForm
from monitoring.webhooks.models import WebhookDelivery, WebhookEndpoint
from monitoring.webhooks.services import (
    RedeliverError,
    delivery_redeliver,
    endpoint_create,
    endpoint_delete,
    endpoint_ping,
    endpoint_rotate_secret,
    endpoint_update,
)

DELIVERIES_PER_PAGE = 25


def _org(request: OrgRequest) -> Organization:
    return cast(Organization, request.organization)


def _user(request: OrgRequest) -> User:
    return cast(User, request.user)


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"  # the page may show a secret once
    return response


@require_GET
@role_required(Role.ADMIN)
def endpoint_list(request: OrgRequest) -> HttpResponse:
    endpoints = WebhookEndpoint.objects.for_org(_org(request)).order_by("name", "pk")
    return render(request, "monitoring/webhooks_list.html", {"endpoints": endpoints})


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def endpoint_new(request: OrgRequest) -> HttpResponse:
    org = _org(request)
    form = WebhookEndpointForm(request.POST or None, organization=org)
    if request.method == "POST" and form.is_valid():
        endpoint, secret = endpoint_create(organization=org, by=_user(request), **form.cleaned_data)
        messages.success(request, f"Endpoint “{endpoint.name}” created.")
        return _no_store(_detail(request, endpoint, new_secret=secret))
    status = 422 if request.method == "POST" else 200
    return render(request, "monitoring/webhooks_form.html", {"form": form}, status=status)


def _detail(
    request: OrgRequest,
    endpoint: WebhookEndpoint,
    *,
    form: WebhookEndpointForm | None = None,
    new_secret: str = "",
    status: int = 200,
) -> HttpResponse:
    deliveries = Paginator(
        endpoint.deliveries.order_by("-created_at", "-pk"), DELIVERIES_PER_PAGE
    ).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "endpoint": endpoint,
        "form": form or WebhookEndpointForm(organization=_org(request), endpoint=endpoint),
        "new_secret": new_secret,
        "deliveries": deliveries,
    }
    return render(request, "monitoring/webhooks_endpoint.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def endpoint_detail(request: OrgRequest, pk: int) -> HttpResponse:
    org = _org(request)
    endpoint = get_for_org_or_404(WebhookEndpoint.objects.all(), org, pk=pk)
    if request.method == "POST":
        form = WebhookEndpointForm(request.POST, organization=org, endpoint=endpoint)
        if form.is_valid():
            endpoint_update(endpoint=endpoint, by=_user(request), changes=form.cleaned_data)
            messages.success(request, f"Endpoint “{form.cleaned_data['name']}” saved.")
            return redirect("webhooks:endpoint", pk=endpoint.pk)
        return _detail(request, endpoint, form=form, status=422)
    return _detail(request, endpoint)


@require_POST
@role_required(Role.ADMIN)
def endpoint_toggle(request: OrgRequest, pk: int) -> HttpResponse:
    endpoint = get_for_org_or_404(WebhookEndpoint.objects.all(), _org(request), pk=pk)
    endpoint = endpoint_update(
        endpoint=endpoint, by=_user(request), changes={"enabled": not endpoint.enabled}
    )
    messages.success(
        request, f"Endpoint “{endpoint.name}” {'enabled' if endpoint.enabled else 'disabled'}."
    )
    return redirect("webhooks:endpoint", pk=endpoint.pk)


@require_POST
@role_required(Role.ADMIN)
def endpoint_rotate(request: OrgRequest, pk: int) -> HttpResponse:
    endpoint = get_for_org_or_404(WebhookEndpoint.objects.all(), _org(request), pk=pk)
    secret = endpoint_rotate_secret(endpoint=endpoint, by=_user(request))
    endpoint.refresh_from_db()
    messages.success(request, "New secret made: deliveries are signed with it from now on.")
    return _no_store(_detail(request, endpoint, new_secret=secret))


@require_POST
@role_required(Role.ADMIN)
def endpoint_test(request: OrgRequest, pk: int) -> HttpResponse:
    endpoint = get_for_org_or_404(WebhookEndpoint.objects.all(), _org(request), pk=pk)
    delivery = endpoint_ping(endpoint=endpoint, by=_user(request))
    messages.success(request, f"Test ping {delivery.event_id} queued: see the log below.")
    return redirect("webhooks:endpoint", pk=endpoint.pk)


@require_POST
@role_required(Role.ADMIN)
def endpoint_remove(request: OrgRequest, pk: int) -> HttpResponse:
    endpoint = get_for_org_or_404(WebhookEndpoint.objects.all(), _org(request), pk=pk)
    name = endpoint.name
    endpoint_delete(endpoint=endpoint, by=_user(request))
    messages.success(request, f"Endpoint “{name}” deleted, with its delivery log.")
    return redirect("webhooks:endpoints")


@require_GET
@role_required(Role.ADMIN)
def delivery_detail(request: OrgRequest, pk: int) -> HttpResponse:
    delivery = get_for_org_or_404(
        WebhookDelivery.objects.select_related("endpoint"), _org(request), pk=pk
    )
    return render(
        request,
        "monitoring/webhooks_delivery.html",
        {"delivery": delivery, "attempts": delivery.attempt_log.order_by("number")},
    )


@require_POST
@role_required(Role.ADMIN)
def delivery_resend(request: OrgRequest, pk: int) -> HttpResponse:
    delivery = get_for_org_or_404(
        WebhookDelivery.objects.select_related("endpoint"), _org(request), pk=pk
    )
    try:
        delivery_redeliver(delivery=delivery, by=_user(request))
    except RedeliverError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{delivery.event_id} queued again, with the same event id.")
    return redirect("webhooks:delivery", pk=delivery.pk)
