from django.apps import AppConfig


class SmtpGatewayConfig(AppConfig):
    name = "smtp_gateway"
    default_auto_field = "django.db.models.BigAutoField"
