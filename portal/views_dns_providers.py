"""DNS providers a user connects (their own, not a tenant's), and the automatic DNS setup of a
domain through one of them."""


def dns_setup_context(request, domain):
    return {}
