"""Two ways in: HTTP Basic with a Dispatch credential (programmatic, one tenant) and a
Bearer JWT (a portal user, the tenants they own)."""
import base64
import binascii

from rest_framework import authentication, exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication

from . import throttling


class CredentialPrincipal:
    """request.user when a credential authenticated: it is not a person and owns nothing
    but its tenant, so views can never mistake it for the tenant's owner."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    def __init__(self, credential):
        self.credential = credential
        self.tenant = credential.tenant
        self.pk = self.id = None

    def __str__(self):
        return f"credential:{self.credential.name}"


class CredentialBasicAuthentication(authentication.BaseAuthentication):
    www_authenticate_realm = "dispatch"

    def authenticate(self, request):
        from tenants.services import credential_authenticate, credential_touch

        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"basic":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid basic authentication header.")
        try:
            decoded = base64.b64decode(header[1], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Invalid basic authentication header.") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise exceptions.AuthenticationFailed("Invalid basic authentication header.")
        with throttling.guard(request, account=username):
            credential = credential_authenticate(username=username, password=password)
            if credential is None:
                raise exceptions.AuthenticationFailed("Invalid credential username or password.")
        if credential.is_revoked:
            raise exceptions.AuthenticationFailed("This credential has been revoked.")
        credential_touch(credential)
        return CredentialPrincipal(credential), credential

    def authenticate_header(self, request):
        return f'Basic realm="{self.www_authenticate_realm}"'


class ActiveUserJWTAuthentication(JWTAuthentication):
    """simplejwt, refusing inactive users (it checks is_active; we keep the check explicit)."""

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User is inactive.")
        return user
