"""The two pagination styles of the spec: page/limit (email log) and limit/offset (suppressions)."""
import math

from dispatch_site.errors import ValidationFailed

MAX_LIMIT = 100


def _int_param(request, name, default, minimum, maximum=None):
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be an integer", details={name: ["must be an integer"]}) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ValidationFailed(f"{name} must be {bound}", details={name: [f"must be {bound}"]})
    return value


def paginate_by_page(request, queryset, default_limit=50):
    """Returns (items, pagination) with pagination = {total, page, limit, total_pages}."""
    page = _int_param(request, "page", 1, 1)
    limit = _int_param(request, "limit", default_limit, 1, MAX_LIMIT)
    total = queryset.count()
    start = (page - 1) * limit
    items = list(queryset[start : start + limit])
    return items, {"total": total, "page": page, "limit": limit, "total_pages": math.ceil(total / limit) if total else 0}


def paginate_by_offset(request, queryset, default_limit=50):
    """Returns (items, pagination) with pagination = {total, limit, offset}."""
    limit = _int_param(request, "limit", default_limit, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0)
    total = queryset.count()
    items = list(queryset[offset : offset + limit])
    return items, {"total": total, "limit": limit, "offset": offset}
