"""``{% livesection name %}…{% endlivesection %}``: a live section of the ticket page.

It defines the partial ``name`` (``template.html#name``, as ``{% partialdef name inline %}``
does) and renders it where it stands, unless the context holds it already rendered
(``_sections[name]``): the ticket page renders each live section once, to hash it for the live
update, and shows that same HTML (``tickets.views._with_hashes``) instead of rendering it again.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import mark_safe
from template_partials.templatetags.partials import TemplateProxy

register = template.Library()


class LiveSectionNode(template.Node):
    def __init__(self, name: str, nodelist: template.NodeList) -> None:
        self.name = name
        self.nodelist = nodelist

    def render(self, context: template.Context) -> str:
        rendered: dict[str, Any] | None = context.get("_sections")
        if rendered is not None and self.name in rendered:
            return mark_safe(rendered[self.name])  # noqa: S308 (rendered by a template)
        return str(self.nodelist.render(context))


@register.tag("livesection")
def livesection(parser: Any, token: Any) -> LiveSectionNode:
    bits = token.split_contents()
    if len(bits) != 2:
        raise template.TemplateSyntaxError("livesection takes one argument: the section's name")
    name = bits[1]
    nodelist = parser.parse(("endlivesection",))
    parser.delete_first_token()
    parser.extra_data.setdefault("partials", {})[name] = TemplateProxy(
        nodelist, parser.origin, name
    )
    return LiveSectionNode(name, nodelist)
