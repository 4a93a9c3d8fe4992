from __future__ import annotations

from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from careinbox.api import views as api_views
from channels_social.api import BrandViewSet, ChannelViewSet
from monitoring.api import SlaPolicyViewSet, SlaTimerViewSet, metrics_today
from monitoring.escalation.api import EscalationRuleViewSet
from monitoring.webhooks.api import WebhookDeliveryViewSet, WebhookEndpointViewSet
from tickets.api import CustomerViewSet, TagViewSet, TicketViewSet

router = DefaultRouter()
router.register("tickets", TicketViewSet, basename="ticket")
router.register("tags", TagViewSet, basename="tag")
router.register("customers", CustomerViewSet, basename="customer")
router.register("sla-policies", SlaPolicyViewSet, basename="sla-policy")
router.register("sla-timers", SlaTimerViewSet, basename="sla-timer")
router.register("brands", BrandViewSet, basename="brand")
router.register("channels", ChannelViewSet, basename="channel")
router.register("escalation-rules", EscalationRuleViewSet, basename="escalation-rule")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")
router.register("webhook-deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")

api_v1 = [
    path("me/", api_views.me, name="api-me"),
    path("auth/token/", api_views.issue_token, name="api-token"),
    path("metrics/today/", metrics_today, name="api-metrics-today"),
    path("", include(router.urls)),
]

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI injects its own <style> elements: only this page allows inline styles (never
    # inline script); it shows the schema, no data.
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
    path("account/api-tokens/", include("careinbox.api.urls")),
    path("settings/escalation/", include("monitoring.escalation.urls")),
    path("settings/webhooks/", include("monitoring.webhooks.urls")),
    path("settings/", include("careinbox.accounts.urls")),
    path("invitation/", include("careinbox.accounts.invitation_urls")),
    path("notifications/", include("careinbox.notifications.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("", include("channels_social.urls")),
    path("", include("tickets.urls")),
]

handler404 = "careinbox.api.views.not_found"
