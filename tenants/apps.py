from django.apps import AppConfig
from django.db.models.signals import pre_save


def unsigned_token(token):
    """A JWT without its signature ("header.payload."): its claims stay readable, but it no longer
    authenticates anybody."""
    header_and_payload, dot, _ = token.rpartition(".")
    return header_and_payload + "." if dot else token


def _store_refresh_tokens_unsigned(sender, instance, **kwargs):
    # simplejwt keeps every refresh token it issues (OutstandingToken.token, shown in the admin)
    # for the blacklist, which only needs its jti: a refresh token is a bearer secret, so what a
    # database dump or an operator can read must not be usable.
    instance.token = unsigned_token(instance.token)


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

        pre_save.connect(_store_refresh_tokens_unsigned, sender=OutstandingToken,
                         dispatch_uid="tenants.refresh_tokens_unsigned")
