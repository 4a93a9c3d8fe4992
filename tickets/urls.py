from __future__ import annotations

from django.urls import path

from tickets import customer_views, reply_views, views, workflow_views

app_name = "tickets"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("inbox/bulk/", views.inbox_bulk, name="bulk"),
    path("inbox/views/", views.saved_view_create, name="saved_view_create"),
    path("inbox/views/<int:pk>/delete/", views.saved_view_delete, name="saved_view_delete"),
    path("tickets/<int:pk>/", views.ticket_detail, name="detail"),
    path("tickets/<int:pk>/assign-to-me/", views.assign_to_me, name="assign_me"),
    path("tickets/<int:pk>/steps/<slug:step>/", views.ticket_step, name="step"),
    path(
        "tickets/<int:pk>/messages/<int:message_id>/settle/",
        views.settle_uncertain,
        name="settle",
    ),
    # Team work, notes, promises, skipping steps, moderation (tickets.workflow_views).
    path("tickets/<int:pk>/assign/", workflow_views.assign, name="assign"),
    path("tickets/<int:pk>/claim/", workflow_views.claim, name="claim"),
    path("tickets/<int:pk>/tags/", workflow_views.tag_add, name="tag-add"),
    path("tickets/<int:pk>/tags/remove/", workflow_views.tag_remove, name="tag-remove"),
    path("tickets/<int:pk>/notes/", workflow_views.note, name="note"),
    path("tickets/<int:pk>/promises/", workflow_views.promise, name="promise"),
    path(
        "tickets/<int:pk>/promises/<int:promise_id>/kept/",
        workflow_views.promise_kept,
        name="promise-kept",
    ),
    path("tickets/<int:pk>/steps/<slug:step>/skip/", workflow_views.skip_step, name="skip"),
    path(
        "tickets/<int:pk>/close-without-close-out/",
        workflow_views.close_without_close_out,
        name="close-without-close-out",
    ),
    path(
        "tickets/<int:pk>/messages/<int:message_id>/hide/",
        workflow_views.hide_post,
        name="hide",
    ),
    path(
        "tickets/<int:pk>/messages/<int:message_id>/delete/",
        workflow_views.delete_post,
        name="delete-post",
    ),
    path("settings/routing/", workflow_views.routing, name="routing"),
    path("me/availability/", workflow_views.my_availability, name="my-availability"),
    # Replying well (tickets.reply_views)
    path("tickets/<int:pk>/reply/<slug:step>/", reply_views.send_reply, name="reply"),
    path("tickets/<int:pk>/reply/<slug:step>/check/", reply_views.check_reply, name="reply-check"),
    path("tickets/<int:pk>/canned/", reply_views.insert_canned, name="canned-insert"),
    path("tickets/<int:pk>/priority/", reply_views.override_priority, name="priority"),
    path("approvals/", reply_views.approval_queue, name="approvals"),
    path(
        "approvals/<int:approval_id>/decide/",
        reply_views.approval_decision,
        name="approval-decide",
    ),
    path("settings/canned-responses/", reply_views.canned_list, name="canned-list"),
    path("settings/canned-responses/<int:canned_id>/", reply_views.canned_edit, name="canned-edit"),
    path("settings/priority-rules/", reply_views.priority_rules, name="priority-rules"),
    path("customers/", customer_views.customer_list, name="customers"),
    path("customers/<int:pk>/", customer_views.customer_profile, name="customer"),
    path("customers/<int:pk>/contact/", customer_views.customer_contact, name="customer-contact"),
    path("customers/<int:pk>/notes/", customer_views.customer_note, name="customer-note"),
    path("customers/<int:pk>/link/", customer_views.customer_link, name="customer-link"),
    path("customers/<int:pk>/export/", customer_views.customer_export, name="customer-export"),
    path("customers/<int:pk>/erase/", customer_views.customer_erase, name="customer-erase"),
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
