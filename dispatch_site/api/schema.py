"""OpenAPI security schemes for our two authentication classes (drf-spectacular extensions,
registered on import by dispatch_site.urls)."""
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class CredentialBasicScheme(OpenApiAuthenticationExtension):
    target_class = "dispatch_site.api.authentication.CredentialBasicAuthentication"
    name = "credentialBasic"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic",
                "description": "A Dispatch credential: `<name>@<DISPATCH_HOSTNAME>` and its `dp_sk_...` password."}


class ActiveUserJWTScheme(SimpleJWTScheme):
    target_class = "dispatch_site.api.authentication.ActiveUserJWTAuthentication"
    name = "bearerJWT"
