"""Cache-Control for everything the application itself answers."""


class NoStoreByDefault:
    """`Cache-Control: no-store` on every response that does not set its own: API answers and
    portal pages carry tenant data and secrets shown once (a new credential's password, a webhook
    signing secret, JWTs), which no browser cache or proxy should keep. Static files never get
    here (WhiteNoise, earlier in MIDDLEWARE, answers them with its own long-lived caching)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Cache-Control", "no-store")
        return response
