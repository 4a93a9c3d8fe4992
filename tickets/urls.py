from __future__ import annotations

from django.urls import path

from tickets import reply_views, views

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
]
