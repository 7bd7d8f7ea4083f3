"""Two complete, separate worlds (a user, their tenant, a credential and one object of every
kind), built through the services and API the product uses. The victim's data all carries one
random marker, so a response that leaks any of it is easy to spot."""
import functools
import secrets
from dataclasses import dataclass, field

from django.utils import timezone

from tests.conftest import basic_client, jwt_client


@dataclass
class World:
    marker: str
    user: object
    tenant: object
    credential: object
    jwt: object  # APIClient with the user's Bearer token
    basic: object  # APIClient with the credential
    domain: object = None
    ids: dict = field(default_factory=dict)  # URL parameter name -> id of this world's object

    @property
    def secrets_and_ids(self):
        """Strings that must never appear in a response given to someone else."""
        return {self.marker, self.credential.username, *self.ids.values()}


@functools.lru_cache(maxsize=1)
def shared_dkim_keypair():
    from cryptography.hazmat.primitives.asymmetric import rsa

    from domains.services import base64, serialization

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return base64.b64encode(public_der).decode("ascii"), private_pem


def build_world(*, make_user, make_tenant, make_credential, label):
    """Everything a tenant can own. Needs DISPATCH_WEBHOOK_ALLOW_PRIVATE and moto (mock_aws)
    active, and domains.services._new_dkim_keypair patched to shared_dkim_keypair for speed."""
    from domains.models import Domain
    from domains.provider_services import dns_provider_connect
    from domains.services import domain_create
    from sending.models import Message
    from sending.suppressions import suppression_add
    from templates_app.services import template_create
    from webhooks.models import Delivery
    from webhooks.services import endpoint_create, event_record

    marker = f"{label}{secrets.token_hex(6)}"
    user = make_user(email=f"{marker}@example.org")
    tenant = make_tenant(owner=user, name=f"Tenant {marker}")
    credential = make_credential(tenant, label=f"cred {marker}")
    world = World(marker, user, tenant, credential, jwt_client(user), basic_client(credential.username, credential.password))
    world.ids["tenant_id"] = str(tenant.id)
    world.ids["credential_id"] = str(credential.id)

    domain = domain_create(tenant=tenant, name=f"{marker}.example.com")
    Domain.objects.filter(pk=domain.pk).update(status=Domain.Status.VERIFIED, verified_at=timezone.now())
    world.domain = domain
    world.ids["domain_id"] = str(domain.id)

    template = template_create(tenant=tenant, name=f"Template {marker}", subject=f"Subject {marker}",
                               html_body=f"<p>{marker} {{{{ name }}}}</p>", text_body=f"{marker}")
    world.ids["template_id"] = str(template.id)

    r = world.jwt.post(f"/api/v1/dispatch/tenants/{tenant.id}/send", {
        "from": f"app@{marker}.example.com", "to": [f"rcpt-{marker}@example.org"], "subject": f"Mail {marker}",
        "text_body": f"Body {marker}", "tags": [marker], "metadata": {"ref": marker},
    }, format="json")
    assert r.status_code == 200, r.content
    world.ids["log_id"] = str(Message.objects.get(tenant=tenant).id)

    suppression, _ = suppression_add(tenant=tenant, email=f"supp-{marker}@example.org", reason=f"reason {marker}")
    world.ids["suppression_id"] = str(suppression.id)

    endpoint, _ = endpoint_create(tenant=tenant, url=f"http://127.0.0.1:9/{marker}", events=["delivered", "bounced"])
    world.ids["webhook_id"] = str(endpoint.id)
    event_record(tenant=tenant, event="delivered", payload={"email": f"rcpt-{marker}@example.org", "note": marker})
    world.ids["delivery_id"] = str(Delivery.objects.get(endpoint=endpoint).id)

    provider = dns_provider_connect(owner=user, provider="route53", label=f"dns {marker}", credentials={
        "access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": f"secret{marker}", "region": "us-east-1",
    })
    world.ids["provider_id"] = str(provider.id)
    return world


def tenant_state(world):
    """Every row the world owns (all models with a tenant, its tenant, user and DNS providers),
    to prove that nothing another principal did changed any of it."""
    from django.apps import apps

    from domains.models import DnsProvider
    from tenants.models import Tenant, User

    state = {}
    for model in apps.get_models():
        fields = {f.name for f in model._meta.concrete_fields}
        if "tenant" in fields:
            rows = model._base_manager.filter(tenant=world.tenant).values()
            state[model._meta.label] = sorted(repr(sorted((k, v) for k, v in row.items() if k != "last_used_at")) for row in rows)
    state["tenant"] = repr(Tenant.objects.filter(pk=world.tenant.pk).values().get())
    state["user"] = repr(User.objects.filter(pk=world.user.pk).values().get())
    state["dns providers"] = sorted(repr(sorted(r.items())) for r in DnsProvider.objects.filter(owner=world.user).values())
    return state
