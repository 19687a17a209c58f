"""``GET /``: a small server-rendered page (Jinja2, no JavaScript) for people to look at the lists.

Enter a customer id to see every model's list side by side (category, price, predicted review
score), or a product id to see its similar items, what is bought with it and its predicted
review score.  Problems (a malformed id, an unknown product, no published store) are shown as
a message on the page with the matching status code, never as a server error.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ecomrec_spark.serving import lookup
from ecomrec_spark.serving.deps import AssignmentDep, PointerDep, TemplatesDep
from ecomrec_spark.serving.lookup import ApiError
from ecomrec_spark.serving.store import StoreUnavailable
from ecomrec_spark.serving.variants import OVERRIDE, assign, resolve_model

router = APIRouter(tags=["page"])
Text = Annotated[str | None, Query(description="checked by the page itself, which shows a message")]


@router.get("/", response_class=HTMLResponse)
def page(request: Request, pointer: PointerDep, assignment: AssignmentDep, templates: TemplatesDep,
         customer_id: Text = None, product_id: Text = None) -> HTMLResponse:
    """The page: forms for a customer id and a product id, and their lists."""
    customer_id = (customer_id or "").strip() or None
    product_id = (product_id or "").strip() or None
    ctx: dict[str, Any] = {"customer_id": customer_id, "product_id": product_id, "errors": [], "live": None,
                           "customer": None, "product": None}
    status = 200
    try:
        live = pointer.current()
        ctx["live"] = live
        if customer_id is not None:
            try:
                known, lists = lookup.every_list(live, customer_id)
                variant = assign(customer_id, assignment.variants, assignment.salt)
                ctx["customer"] = {"known": known, "lists": lists, "variant": variant.name if variant else None,
                                   "variant_model": resolve_model(variant, live.default_model),
                                   "default_model": live.default_model}
            except ApiError as exc:
                ctx["errors"].append(str(exc.detail))
                status = exc.status
        if product_id is not None:
            try:
                ctx["product"] = {"review": lookup.review_score(live, product_id),
                                  "similar": lookup.similar(live, product_id).items,
                                  "together": lookup.together(live, product_id).items}
            except ApiError as exc:
                ctx["errors"].append(str(exc.detail))
                status = status if status != 200 else exc.status
    except StoreUnavailable as exc:
        ctx["errors"].append(str(exc))
        status = 503
    ctx["override"] = OVERRIDE
    return templates.TemplateResponse(request, "index.html", ctx, status_code=status)
