"""factory_boy factories: every object belongs to an organisation, and related ones share it."""

from __future__ import annotations

import itertools

import factory
from django.utils import timezone

from careinbox.accounts.models import Membership, Organization, Role, User
from channels_social.models import Brand, Platform, SocialAccount
from tickets.models import Customer, CustomerIdentity, Direction, Message, MessageKind, Ticket

_ids = itertools.count(1_700_000_000_000_000_000)


def next_platform_id() -> str:
    return str(next(_ids))


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.AGENT


class BrandFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Brand

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Brand {n}")


class SocialAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SocialAccount

    brand = factory.SubFactory(BrandFactory)
    organization = factory.SelfAttribute("brand.organization")
    platform = Platform.X
    external_id = factory.LazyFunction(next_platform_id)
    username = factory.Sequence(lambda n: f"BrandCare{n}")
    # Never the real X API by accident: a local port where nothing listens (connection refused).
    api_base_url = "http://127.0.0.1:9"
    credentials = factory.LazyAttribute(
        lambda o: {
            "consumer_key": "ck",
            "consumer_secret": "cs",
            "access_token": f"{o.external_id}-token",
            "access_token_secret": "ts",
        }
    )


class TicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ticket

    social_account = factory.SubFactory(SocialAccountFactory)
    organization = factory.SelfAttribute("social_account.organization")
    brand = factory.SelfAttribute("social_account.brand")
    platform = Platform.X
    customer_external_id = factory.LazyFunction(next_platform_id)
    customer_username = factory.Sequence(lambda n: f"customer{n}")
    customer_followers = 100
    opened_at = factory.LazyFunction(timezone.now)


class InboundMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message
        skip_postgeneration_save = True

    ticket = factory.SubFactory(TicketFactory)
    organization = factory.SelfAttribute("ticket.organization")
    platform = Platform.X
    kind = MessageKind.POST
    direction = Direction.INBOUND
    is_public = True
    external_id = factory.LazyFunction(next_platform_id)
    author_external_id = factory.SelfAttribute("ticket.customer_external_id")
    author_username = factory.SelfAttribute("ticket.customer_username")
    text = "My order never arrived @BrandCare"
    created_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def whose_turn(self, create: bool, extracted: object, **kwargs: object) -> None:
        """Keep the ticket's ``last_message_direction`` as intake does for every message."""
        if create:
            self.ticket.refresh_last_message_direction()


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    organization = factory.SubFactory(OrganizationFactory)
    display_name = factory.Sequence(lambda n: f"Customer {n}")


class CustomerIdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerIdentity

    customer = factory.SubFactory(CustomerFactory)
    organization = factory.SelfAttribute("customer.organization")
    platform = Platform.X
    external_id = factory.LazyFunction(next_platform_id)
    username = factory.Sequence(lambda n: f"person{n}")
    followers = 100
