from django.urls import reverse

ACCOUNT_NAV = [("DNS providers", "portal:dns_providers")]


def account_nav(request):
    """Links of the top bar that belong to the user (not a tenant)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"account_nav": [{"label": label, "url": reverse(name)} for label, name in ACCOUNT_NAV]}
