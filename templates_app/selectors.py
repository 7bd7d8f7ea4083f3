"""Reads for templates and the master template."""
import uuid

from dispatch_site.errors import NotFound

from .models import MasterTemplate, Template


def template_not_found():
    return NotFound("Template not found.", code="TEMPLATE_NOT_FOUND")


def templates_for(tenant):
    return Template.objects.for_tenant(tenant)


def template_get(*, tenant, template_id):
    template = Template.objects.for_tenant(tenant).filter(pk=template_id).first()
    if template is None:
        raise template_not_found()
    return template


def template_by_ref(*, tenant, ref):
    """The tenant's template named by `ref`: a UUID (string or uuid.UUID) or a slug. Slugs can
    never be UUID-shaped, so the two cannot be confused."""
    if isinstance(ref, uuid.UUID):
        return template_get(tenant=tenant, template_id=ref)
    ref = str(ref).strip()
    try:
        return template_get(tenant=tenant, template_id=uuid.UUID(ref))
    except ValueError:
        pass
    template = Template.objects.for_tenant(tenant).filter(slug=ref.lower()).first()
    if template is None:
        raise template_not_found()
    return template


def active_master_template():
    return MasterTemplate.objects.filter(is_active=True).first()
