"""The HTML pages of meshload's reports: one Jinja environment for every template in `templates/`.

Everything is escaped unless it is `Markup` (the charts are), and a name missing from a page's
context is an error, not an empty string.
"""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("meshload.results", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(template: str, **context: object) -> str:
    """The page `templates/<template>` rendered with `context`."""
    return _environment().get_template(template).render(**context)
