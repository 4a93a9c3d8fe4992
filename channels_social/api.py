"""The channels part of the REST API: brands and their handles (admins; no credential is ever
returned), with each handle's poll health."""

from __future__ import annotations

from rest_framework import mixins, serializers, viewsets

from careinbox.accounts.models import Role
from careinbox.api.auth import HasRole
from careinbox.api.common import OrgScopedMixin, Pagination
from channels_social.models import Brand, SocialAccount


class BrandSerializer(serializers.ModelSerializer):
    class Meta:
        model = Brand
        fields = ["id", "name", "created_at"]
        read_only_fields = ["id", "created_at"]


class BrandViewSet(OrgScopedMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Brand.objects.order_by("name", "pk")
    serializer_class = BrandSerializer
    permission_classes = [HasRole]
    pagination_class = Pagination


class ChannelSerializer(serializers.ModelSerializer):
    has_credentials = serializers.SerializerMethodField()

    class Meta:
        model = SocialAccount
        fields = [
            "id",
            "brand",
            "platform",
            "external_id",
            "username",
            "enabled",
            "connected_at",
            "last_polled_at",
            "next_poll_at",
            "last_poll_error",
            "last_poll_error_at",
            "rate_limit_remaining",
            "rate_limit_reset_at",
            "has_credentials",
        ]
        read_only_fields = [name for name in fields if name != "enabled"]

    def get_has_credentials(self, account: SocialAccount) -> bool:
        return bool(account.credentials)


class ChannelViewSet(
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The organisation's handles; an admin may turn one on or off (``enabled``)."""

    queryset = SocialAccount.objects.order_by("platform", "username", "pk")
    serializer_class = ChannelSerializer
    permission_classes = [HasRole]
    required_role = Role.ADMIN
    pagination_class = Pagination
    http_method_names = ["get", "patch", "head", "options"]
