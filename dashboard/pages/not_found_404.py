"""Any other address: "not found" in the URL's language, with a link back to the overview.

Dash pages shows the layout of the registered module whose name ends in ``not_found_404`` for a
path no page matches.
"""
from __future__ import annotations

import dash
from dash import html
from dcmon.dashboard import common

PATH = "/not-found"


def layout(**query) -> html.Div:
    lang, _, _ = common.page_query(query)
    return common.refused_page(lang) or common.not_found(lang)


def register(app) -> None:
    dash.register_page(__name__, path=PATH, layout=layout)
