"""The settings area's shell (its sections come from the apps; see ``careinbox.settings_area``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from careinbox.accounts.models import Role
from careinbox.tenancy import role_required


@role_required(Role.ADMIN)
def settings_home(request: HttpRequest) -> HttpResponse:
    return render(request, "settings/home.html")
