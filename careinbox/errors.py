"""Error reports that never show a secret.

Django's ``SafeExceptionReporterFilter`` hides settings and POST fields whose names look secret,
but a traceback's frame variables are shown as they are unless a function is decorated with
``sensitive_variables``. Credentials travel through many frames (decrypting a channel's keys,
building a tweepy or Graph client, signing a webhook), so this filter hides, in every frame, each
variable whose name looks secret, and each dict entry (recursively) whose key does.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

SECRET_NAMES = re.compile(
    r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|CREDENTIAL|AUTHORI[SZ]|COOKIE|FERNET|BEARER",
    flags=re.IGNORECASE,
)


class SecretsHidingFilter(SafeExceptionReporterFilter):
    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        cleansed = []
        for name, value in variables:
            if SECRET_NAMES.search(str(name)):
                cleansed.append((name, self.cleansed_substitute))
            else:
                cleansed.append((name, self._cleanse_value(value)))
        return cleansed

    def get_post_parameters(self, request: Any) -> Any:
        parameters = super().get_post_parameters(request)
        if request is None or not parameters:
            return parameters
        cleansed = parameters.copy()
        for name in list(cleansed.keys()):
            if SECRET_NAMES.search(str(name)):
                cleansed[name] = self.cleansed_substitute
        return cleansed

    def _cleanse_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: (
                    self.cleansed_substitute
                    if SECRET_NAMES.search(str(key))
                    else self._cleanse_value(item)
                )
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self._cleanse_value(item) for item in value)
        return value
