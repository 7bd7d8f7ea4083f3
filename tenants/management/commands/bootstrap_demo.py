"""Create (once) a demo user, tenant and credential for `make run`, and print how to use them.

The credential's password is shown once by design; for the local demo we keep a copy in
var/demo-credentials.json (mode 600) so every `make run` can print it again."""
import json
import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from tenants import services
from tenants.models import Tenant, User

DEMO_EMAIL = "demo@dispatch.localhost"
DEMO_DOMAIN = "example.com"


class Command(BaseCommand):
    help = "Create the development demo account (once) and print login and first-send instructions."

    def handle(self, *args, **options):
        services.plans_seed()
        path = settings.VAR_DIR / "demo-credentials.json"
        state = json.loads(path.read_text()) if path.exists() else {}
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None or "user_password" not in state:
            state = {"user_password": secrets.token_urlsafe(12)}
            if user is None:
                user = User.objects.create_user(email=DEMO_EMAIL, password=state["user_password"])
            else:
                user.set_password(state["user_password"])
                user.save()
            user.is_staff = user.is_superuser = True
            user.save()
        tenant = Tenant.objects.filter(owner=user).first() or services.tenant_create(
            owner=user, name="Demo", plan="starter"
        )
        if state.get("tenant_id") != str(tenant.id) or "credential_password" not in state:
            credential, password = services.credential_create(tenant=tenant, label="demo")
            state.update(tenant_id=str(tenant.id), credential_username=services.credential_username(credential),
                         credential_password=password)
        if settings.DISPATCH_ENV == "development":
            # The printed curl sends from example.com: verified without DNS, development only.
            from domains.services import domain_mark_verified_for_development

            domain_mark_verified_for_development(tenant=tenant, name=DEMO_DOMAIN)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state, indent=2))
        os.chmod(path, 0o600)
        self._print(state)

    def _print(self, s):
        base = settings.DISPATCH_PUBLIC_URL
        self.stdout.write(f"""
=====================================================================
 Dispatch is starting (delivery mode: {settings.DISPATCH_DELIVERY_MODE})

 Portal:  {base}/portal/         Admin: {base}/admin/
 API docs: {base}/api/v1/docs/
   login:    {DEMO_EMAIL}
   password: {s['user_password']}

 Demo tenant {s['tenant_id']}
 API/SMTP credential:
   username: {s['credential_username']}
   password: {s['credential_password']}

 Send a first email. In development the demo tenant's domain {DEMO_DOMAIN} counts as
 verified without DNS (other domains: add and verify them, see docs/domains.md);
 in capture mode nothing leaves this machine:
   curl -u '{s['credential_username']}:{s['credential_password']}' \\
     {base}/api/v1/dispatch/tenants/{s['tenant_id']}/send \\
     -H 'Content-Type: application/json' \\
     -d '{{"from":"hello@example.com","to":["you@example.net"],"subject":"Hello","html_body":"<h1>Hi</h1>"}}'

 SMTP: {settings.DISPATCH_SMTP_BIND}:{(settings.DISPATCH_SMTP_STARTTLS_PORTS or [2525])[0]} (STARTTLS, same username/password)
=====================================================================
""")
