"""Every ticket gets its customer: one Customer and CustomerIdentity per organisation, platform
and customer id found on existing tickets (the newest ticket's handle, name and followers)."""

from django.db import migrations
from django.db.models import Max, Min


def forwards(apps, schema_editor):
    Ticket = apps.get_model("tickets", "Ticket")
    Message = apps.get_model("tickets", "Message")
    Customer = apps.get_model("tickets", "Customer")
    CustomerIdentity = apps.get_model("tickets", "CustomerIdentity")
    groups = (
        Ticket.objects.filter(customer__isnull=True)
        .values("organization_id", "platform", "customer_external_id")
        .annotate(first=Min("opened_at"), last=Max("opened_at"), newest=Max("pk"))
        .order_by()
    )
    for group in groups.iterator():
        newest = Ticket.objects.get(pk=group["newest"])
        identity = CustomerIdentity.objects.filter(
            organization_id=group["organization_id"],
            platform=group["platform"],
            external_id=group["customer_external_id"],
        ).first()
        if identity is None:
            customer = Customer.objects.create(
                organization_id=group["organization_id"],
                display_name=newest.customer_display_name or newest.customer_username,
                created_at=group["first"],
            )
            identity = CustomerIdentity.objects.create(
                organization_id=group["organization_id"],
                customer=customer,
                platform=group["platform"],
                external_id=group["customer_external_id"],
                username=newest.customer_username,
                display_name=newest.customer_display_name,
                followers=newest.customer_followers,
                verified=Message.objects.filter(
                    organization_id=group["organization_id"],
                    platform=group["platform"],
                    author_external_id=group["customer_external_id"],
                    author_verified=True,
                ).exists(),
                first_seen_at=group["first"],
                last_seen_at=group["last"],
            )
        Ticket.objects.filter(
            organization_id=group["organization_id"],
            platform=group["platform"],
            customer_external_id=group["customer_external_id"],
            customer__isnull=True,
        ).update(customer_id=identity.customer_id)


class Migration(migrations.Migration):
    dependencies = [("tickets", "0013_customers_threading_merge")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
