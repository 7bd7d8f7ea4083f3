"""Everything that changes sending domains: add, remove, verify, periodic re-checks."""
import base64
import logging
import secrets
from datetime import timedelta
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from dispatch_site import crypto
from dispatch_site.errors import Conflict, NotFound, PermissionDenied

from . import records, selectors
from .models import Domain
from .validation import normalize_domain

logger = logging.getLogger(__name__)

# States the periodic re-check looks at. Pending domains are checked when the tenant calls verify.
RECHECKED_STATUSES = (Domain.Status.VERIFIED, Domain.Status.WARNING, Domain.Status.FAILED)


def _new_dkim_keypair():
    """(public key as published in DNS: base64 DER SubjectPublicKeyInfo, private key PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(public_der).decode("ascii"), private_pem


def _free_selector(name):
    """The configured selector, unless another tenant already uses it for this domain: tenants that
    share a domain publish their keys side by side under distinct selectors."""
    base = settings.DISPATCH_DKIM_SELECTOR
    if not Domain.objects.filter(name=name, dkim_selector=base).exists():
        return base
    return f"{base}-{secrets.token_hex(3)}"


def domain_create(*, tenant, name):
    """Add a sending domain (pending) with a fresh verification token and DKIM key pair."""
    name = normalize_domain(name)
    if Domain.objects.for_tenant(tenant).filter(name=name).exists():
        raise Conflict(f"{name} is already a domain of this tenant.", code="DOMAIN_EXISTS")
    public_key, private_pem = _new_dkim_keypair()
    for _ in range(3):
        domain = Domain(
            tenant=tenant, name=name, verification_token=secrets.token_hex(16),
            dkim_selector=_free_selector(name), dkim_public_key=public_key,
        )
        domain.dkim_private_key_encrypted = crypto.encrypt(private_pem, domain.dkim_private_key_associated_data)
        try:
            with transaction.atomic():
                domain.save(force_insert=True)
            return domain
        except IntegrityError:
            if Domain.objects.for_tenant(tenant).filter(name=name).exists():
                raise Conflict(f"{name} is already a domain of this tenant.", code="DOMAIN_EXISTS") from None
            # Another tenant took the same selector at the same moment: pick again.
    raise Conflict("Could not allocate a DKIM selector, try again.")


def domain_delete(*, tenant, domain_id):
    deleted, _ = Domain.objects.for_tenant(tenant).filter(pk=domain_id).delete()
    if not deleted:
        raise NotFound("Domain not found.", code="DOMAIN_NOT_FOUND")


def domain_dkim_private_key(domain):
    """The domain's DKIM private key, PEM bytes (decrypted; keep it in memory only)."""
    return _decrypted_dkim_key(bytes(domain.dkim_private_key_encrypted), domain.dkim_private_key_associated_data)


@lru_cache(maxsize=512)
def _decrypted_dkim_key(ciphertext, associated_data):
    # Every delivered copy is signed: decrypting the same key once per copy was ~2 % of a worker.
    # Keyed by the ciphertext, so a rotated key (or re-encryption under a new master key) is a
    # new entry; the process keeps plaintext keys in memory as dkim._private_key already does.
    return crypto.decrypt(ciphertext, associated_data)


def domain_verify(*, tenant, domain_id):
    """Check the domain's DNS now. Returns (domain, [RecordCheck]); the domain is verified when
    its ownership TXT record is present."""
    return _check_and_record(selectors.domain_get(tenant=tenant, domain_id=domain_id))


def domain_recheck(*, domain_id):
    """The periodic re-check of one domain (tasks). Skips domains that left the re-checked states."""
    domain = Domain.objects.filter(pk=domain_id, status__in=RECHECKED_STATUSES, verified_without_dns=False).first()
    if domain is None:
        return None
    try:
        return _check_and_record(domain)[0]
    except NotFound:  # deleted by its tenant while DNS was being asked
        return None


def domains_claim_due_rechecks(*, now=None, limit=500):
    """Ids of domains whose re-check is due, claimed by moving next_check_at forward (so parallel
    beats or a slow worker do not check the same domain twice)."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Domain.objects.select_for_update(skip_locked=True)
            .filter(status__in=RECHECKED_STATUSES, verified_without_dns=False, next_check_at__lte=now)
            .order_by("next_check_at")
            .values_list("pk", flat=True)[:limit]
        )
        Domain.objects.filter(pk__in=ids).update(next_check_at=now + _recheck_interval())
    return ids


def _recheck_interval():
    return timedelta(minutes=settings.DISPATCH_DOMAIN_RECHECK_MINUTES)


def _check_and_record(domain):
    checks = records.check_records(domain)  # network I/O: outside any transaction
    ownership = next(c.status for c in checks if c.kind == "verification")
    now = timezone.now()
    with transaction.atomic():
        domain = Domain.objects.select_for_update().filter(pk=domain.pk).first()
        if domain is None:
            raise NotFound("Domain not found.", code="DOMAIN_NOT_FOUND")
        old = domain.status
        _apply_ownership_result(domain, ownership, now)
        domain.last_checked_at = now
        domain.verified_without_dns = False  # a real check replaces the development shortcut
        domain.dns_check = {
            "checked_at": now.isoformat().replace("+00:00", "Z"),
            "records": {c.kind: c.stored() for c in checks},
        }
        domain.next_check_at = now + _recheck_interval() if domain.status in RECHECKED_STATUSES else None
        if domain.status != old:
            domain.status_changed_at = now
            changed = domain
            transaction.on_commit(lambda: domain_status_changed(changed, old, changed.status))
        domain.save()
    return domain, checks


def _apply_ownership_result(domain, ownership, now):
    """The state machine. A DNS error (SERVFAIL, timeout) never starts a warning (it may be ours),
    but it does not stop a running grace period from ending."""
    status = domain.status
    if ownership == records.VERIFIED:
        if status != Domain.Status.WARNING:
            domain.verified_at = now
        domain.status, domain.warning_since = Domain.Status.VERIFIED, None
    elif status == Domain.Status.VERIFIED and ownership != records.ERROR:
        domain.status, domain.warning_since = Domain.Status.WARNING, now
    elif status == Domain.Status.WARNING and not domain.is_usable(now):
        domain.status = Domain.Status.FAILED


def domain_status_changed(domain, old, new):
    """Called once after every committed status change (verify or re-check). The webhook event
    (domain.status_changed) plugs in here."""
    logger.info("domain %s (%s, tenant %s) status %s -> %s", domain.name, domain.id, domain.tenant_id, old, new)


def domain_mark_verified_for_development(*, tenant, name):
    """The `make run` demo: a domain that counts as verified without DNS. Development only."""
    if settings.DISPATCH_ENV != "development":
        raise PermissionDenied("Domains can be marked verified without DNS only in development.")
    name = normalize_domain(name)
    domain = Domain.objects.for_tenant(tenant).filter(name=name).first() or domain_create(tenant=tenant, name=name)
    if domain.status != Domain.Status.VERIFIED or not domain.verified_without_dns:
        now = timezone.now()
        Domain.objects.filter(pk=domain.pk).update(
            status=Domain.Status.VERIFIED, verified_without_dns=True, verified_at=now, status_changed_at=now,
            warning_since=None, next_check_at=None,
        )
        domain.refresh_from_db()
    return domain
