from __future__ import annotations

from django.urls import path

from monitoring.webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("", views.endpoint_list, name="endpoints"),
    path("new/", views.endpoint_new, name="endpoint-new"),
    path("<int:pk>/", views.endpoint_detail, name="endpoint"),
    path("<int:pk>/toggle/", views.endpoint_toggle, name="endpoint-toggle"),
    path("<int:pk>/rotate-secret/", views.endpoint_rotate, name="endpoint-rotate"),
    path("<int:pk>/test/", views.endpoint_test, name="endpoint-test"),
    path("<int:pk>/delete/", views.endpoint_remove, name="endpoint-delete"),
    path("deliveries/<int:pk>/", views.delivery_detail, name="delivery"),
    path("deliveries/<int:pk>/redeliver/", views.delivery_resend, name="delivery-redeliver"),
]
