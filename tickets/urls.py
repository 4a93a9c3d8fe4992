from __future__ import annotations

from django.urls import path

from tickets import customer_views, views

app_name = "tickets"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("tickets/<int:pk>/", views.ticket_detail, name="detail"),
    path("tickets/<int:pk>/steps/<slug:step>/", views.ticket_step, name="step"),
    path(
        "tickets/<int:pk>/messages/<int:message_id>/settle/",
        views.settle_uncertain,
        name="settle",
    ),
    path("customers/<int:pk>/", customer_views.customer_profile, name="customer"),
    path("customers/<int:pk>/contact/", customer_views.customer_contact, name="customer-contact"),
    path("customers/<int:pk>/notes/", customer_views.customer_note, name="customer-note"),
    path("customers/<int:pk>/link/", customer_views.customer_link, name="customer-link"),
    path(
        "customers/<int:pk>/identities/<int:identity_id>/unlink/",
        customer_views.customer_unlink,
        name="customer-unlink",
    ),
    path(
        "tickets/<int:pk>/customer/",
        customer_views.ticket_customer_sidebar,
        name="customer-sidebar",
    ),
    path("tickets/<int:pk>/merge/", customer_views.ticket_merge_into, name="merge"),
    path("tickets/<int:pk>/split/", customer_views.ticket_split_out, name="split"),
    path(
        "tickets/<int:pk>/merge-offers/<int:candidate_id>/dismiss/",
        customer_views.ticket_merge_offer_dismiss,
        name="merge-offer-dismiss",
    ),
    path(
        "settings/threading/",
        customer_views.threading_settings,
        name="settings-threading",
    ),
]
