"""Everything that changes templates, and the rendering entry points used by sending."""
import re
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from dispatch_site.errors import Conflict, ValidationFailed

from . import rendering, selectors
from .models import MasterTemplate, Template
from .rendering import Rendered

__all__ = [
    "Rendered",
    "master_template_activate",
    "master_template_deactivate",
    "render_for_send",
    "template_create",
    "template_delete",
    "template_preview",
    "template_preview_draft",
    "template_update",
]

SLUG_MAX_LENGTH = 100
SLUG_RE = re.compile(r"\A[a-z0-9]+(?:[-_][a-z0-9]+)*\Z")
MAX_EXPLICIT_VARIABLES = 500
MAX_VARIABLE_DEFAULT_CHARS = 10_000
MAX_VARIABLE_DESCRIPTION_CHARS = 1_000

# Used when `use_master_template` is asked for and the operator has activated none: a neutral,
# unbranded, mobile-friendly frame, so such sends still work and look sane.
BUILTIN_MASTER_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{subject}}</title>
</head>
<body style="margin:0;padding:0;background-color:#f4f4f5;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f4f4f5;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:600px;background-color:#ffffff;border-radius:6px;">
<tr><td style="padding:32px;font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;color:#18181b;">
{{content}}
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
"""


# --- validation ------------------------------------------------------------------------------------
def _checked_source(field, source, *, limit=rendering.MAX_TEMPLATE_CHARS):
    source = source or ""
    if len(source) > limit:
        raise rendering.TemplateTooLarge(
            f"{field} is {len(source):,} characters; the limit is {limit:,}.",
            details={field: [f"at most {limit} characters"]},
        )
    found = rendering.problems(source)
    if found:
        raise rendering.TemplateSyntaxError(f"{field}: {found[0]}", details={field: found})
    return source


def _checked_slug(slug):
    slug = slug.strip().lower()
    problem = None
    if len(slug) > SLUG_MAX_LENGTH:
        problem = f"at most {SLUG_MAX_LENGTH} characters"
    elif not SLUG_RE.match(slug):
        problem = "use lower-case letters, digits, '-' and '_' (e.g. welcome-email)"
    else:
        try:
            uuid.UUID(slug)
            problem = "must not look like a UUID (templates are referenced by UUID or slug)"
        except ValueError:
            pass
    if problem:
        raise ValidationFailed(f"slug: {problem}.", details={"slug": [problem]})
    return slug


def _slug_from_name(name):
    base = slugify(name)[:SLUG_MAX_LENGTH].strip("-_") or "template"
    try:
        uuid.UUID(base)
        base = f"template-{base}"[:SLUG_MAX_LENGTH]
    except ValueError:
        pass
    return base


def _explicit_variables(variables):
    """Normalise the `variables` field: {name: default} or {name: {"default", "description"}}."""
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise ValidationFailed("variables must be an object.", details={"variables": ["must be an object"]})
    if len(variables) > MAX_EXPLICIT_VARIABLES:
        raise ValidationFailed(
            f"variables: at most {MAX_EXPLICIT_VARIABLES} entries.", details={"variables": ["too many entries"]}
        )
    rendering.checked_variables(variables, field="variables")
    normalised = {}
    for name, spec in variables.items():
        if not rendering.is_valid_name(name):
            raise ValidationFailed(
                f"variables: {name!r} is not a valid variable name.", details={"variables": [f"invalid name {name!r}"]}
            )
        if isinstance(spec, dict):
            unknown = set(spec) - {"default", "description"}
            if unknown:
                raise ValidationFailed(
                    f"variables.{name}: unknown keys {sorted(unknown)}; use 'default' and 'description'.",
                    details={"variables": [f"{name}: unknown keys {sorted(unknown)}"]},
                )
            default, description = spec.get("default"), spec.get("description") or ""
        else:
            default, description = spec, ""
        if isinstance(default, (dict, list)) or not isinstance(description, str):
            raise ValidationFailed(
                f"variables.{name}: the default must be a string, number or boolean and the description a string.",
                details={"variables": [f"{name}: invalid default or description"]},
            )
        if default is not None:
            default = default if isinstance(default, str) else rendering.value_text(default)
        if (default and len(default) > MAX_VARIABLE_DEFAULT_CHARS) or len(description) > MAX_VARIABLE_DESCRIPTION_CHARS:
            raise ValidationFailed(
                f"variables.{name}: default or description too long.",
                details={"variables": [f"{name}: default at most {MAX_VARIABLE_DEFAULT_CHARS}, description at most {MAX_VARIABLE_DESCRIPTION_CHARS} characters"]},
            )
        normalised[name] = {"default": default, "description": description}
    return normalised


def _merged_variables(explicit, *sources):
    """Every placeholder name found in `sources`, plus the explicit entries (which win)."""
    merged = {}
    for source in sources:
        for name in rendering.variable_names(source):
            merged.setdefault(name, {"default": None, "description": ""})
    merged.update(explicit)
    return merged


def _explicit_part(variables):
    return {name: spec for name, spec in variables.items() if spec.get("default") is not None or spec.get("description")}


def _check_bodies(subject, html_body, text_body):
    if not subject.strip():
        raise ValidationFailed("subject must not be blank.", details={"subject": ["must not be blank"]})
    if not html_body.strip() and not text_body.strip():
        raise ValidationFailed(
            "A template needs an html_body or a text_body.",
            details={"html_body": ["html_body or text_body is required"]},
        )


def _save(template, *, slug_given, fields=None):
    """Save, mapping the per-tenant slug uniqueness to 409 (or to a numbered slug when the slug
    was generated from the name)."""
    base = template.slug
    for attempt in range(1, 100):
        if attempt > 1:
            suffix = f"-{attempt}"
            template.slug = base[: SLUG_MAX_LENGTH - len(suffix)] + suffix
        if not slug_given and Template.objects.for_tenant(template.tenant).filter(slug=template.slug).exclude(
            pk=template.pk
        ).exists():
            continue
        try:
            with transaction.atomic():
                if fields is None:
                    template.save(force_insert=True)
                else:
                    template.save(update_fields=fields)
            return template
        except IntegrityError:
            if slug_given:
                raise Conflict(
                    f"A template with the slug {template.slug!r} already exists.", code="TEMPLATE_SLUG_TAKEN"
                ) from None
    raise Conflict("Could not allocate a slug for this template; give one explicitly.", code="TEMPLATE_SLUG_TAKEN")


# --- templates ---------------------------------------------------------------------------------------
def template_create(*, tenant, name, subject, html_body="", text_body="", slug=None, variables=None):
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("name must not be blank.", details={"name": ["must not be blank"]})
    subject = _checked_source("subject", subject, limit=rendering.MAX_RENDERED_SUBJECT_CHARS)
    html_body = _checked_source("html_body", html_body)
    text_body = _checked_source("text_body", text_body)
    _check_bodies(subject, html_body, text_body)
    explicit = _explicit_variables(variables)
    template = Template(
        tenant=tenant,
        name=name,
        slug=_checked_slug(slug) if slug else _slug_from_name(name),
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        variables=_merged_variables(explicit, subject, html_body, text_body),
    )
    return _save(template, slug_given=bool(slug))


def template_update(
    *, tenant, template_id, name=None, slug=None, subject=None, html_body=None, text_body=None, variables=None
):
    """Partial update: arguments left as None keep their value ("" clears a body; {} clears the
    explicit variables). Variables are re-extracted from the new content."""
    template = selectors.template_get(tenant=tenant, template_id=template_id)
    fields = ["updated_at"]
    if name is not None:
        if not name.strip():
            raise ValidationFailed("name must not be blank.", details={"name": ["must not be blank"]})
        template.name = name.strip()
        fields.append("name")
    if slug is not None:
        template.slug = _checked_slug(slug)
        fields.append("slug")
    if subject is not None:
        template.subject = _checked_source("subject", subject, limit=rendering.MAX_RENDERED_SUBJECT_CHARS)
        fields.append("subject")
    if html_body is not None:
        template.html_body = _checked_source("html_body", html_body)
        fields.append("html_body")
    if text_body is not None:
        template.text_body = _checked_source("text_body", text_body)
        fields.append("text_body")
    _check_bodies(template.subject, template.html_body, template.text_body)
    explicit = _explicit_variables(variables) if variables is not None else _explicit_part(template.variables)
    template.variables = _merged_variables(explicit, template.subject, template.html_body, template.text_body)
    fields.append("variables")
    return _save(template, slug_given=True, fields=fields)


def template_delete(*, tenant, template_id):
    deleted, _ = Template.objects.for_tenant(tenant).filter(pk=template_id).delete()
    if not deleted:
        raise selectors.template_not_found()


# --- rendering ---------------------------------------------------------------------------------------
def _render_template(template, variables, *, missing):
    defaults = template.variable_defaults
    subject = rendering.render_subject(template.subject, variables, defaults=defaults, missing=missing)
    html = rendering.render(template.html_body, variables, escape_html=True, defaults=defaults, missing=missing)
    text = rendering.render(template.text_body, variables, escape_html=False, defaults=defaults, missing=missing)
    return subject, html or None, text or None


def _wrap_in_master(*, tenant, html, subject, variables):
    master = selectors.active_master_template()
    source = master.html if master is not None else BUILTIN_MASTER_HTML
    reserved = {"tenant_name": tenant.name, "subject": subject, "year": str(timezone.now().year)}
    return rendering.render(
        source, {**variables, **reserved}, escape_html=True, raw={MasterTemplate.CONTENT_SLOT: html}
    )


def render_for_send(
    *, tenant, template_ref=None, subject=None, html_body=None, text_body=None, variables=None, use_master_template=False
):
    """What a message says. With `template_ref` (UUID or slug of one of the tenant's templates)
    the template's subject and html replace the given ones and its text replaces text_body when
    it has one; `variables` fill the template's placeholders (missing ones render as their
    default or "", listed in Rendered.missing - never an error). Without a template the given
    subject and bodies are used as they are: variables are not substituted into raw bodies.
    `use_master_template` wraps the html in the active master template (the built-in frame when
    none is active; nothing to wrap for text-only mail). The subject never contains CR or LF."""
    template = None
    if template_ref not in (None, ""):
        template = selectors.template_by_ref(tenant=tenant, ref=template_ref)
    return _rendered(
        tenant=tenant, template=template, subject=subject, html_body=html_body, text_body=text_body,
        variables=variables, use_master_template=use_master_template,
    )


def template_preview(*, tenant, template_id, variables=None, use_master_template=False):
    """The preview endpoint: what render_for_send makes of this template, missing names included."""
    template = selectors.template_get(tenant=tenant, template_id=template_id)
    return _rendered(tenant=tenant, template=template, variables=variables, use_master_template=use_master_template)


def template_preview_draft(
    *, tenant, subject, html_body="", text_body="", variables=None, sample_variables=None, use_master_template=False
):
    """The portal's live preview of an unsaved edit: the same checks as saving, nothing stored."""
    subject = _checked_source("subject", subject, limit=rendering.MAX_RENDERED_SUBJECT_CHARS)
    html_body = _checked_source("html_body", html_body)
    text_body = _checked_source("text_body", text_body)
    _check_bodies(subject, html_body, text_body)
    draft = Template(
        tenant=tenant, subject=subject, html_body=html_body, text_body=text_body,
        variables=_merged_variables(_explicit_variables(variables), subject, html_body, text_body),
    )
    return _rendered(tenant=tenant, template=draft, variables=sample_variables, use_master_template=use_master_template)


def _rendered(*, tenant, template, subject=None, html_body=None, text_body=None, variables, use_master_template):
    variables = rendering.checked_variables(variables)
    missing = []
    html, text = html_body or None, text_body or None
    if template is not None:
        template_subject, html, template_text = _render_template(template, variables, missing=missing)
        subject = template_subject or subject
        text = template_text or text
    subject = rendering.fold_header(subject)
    if use_master_template and html:
        html = _wrap_in_master(tenant=tenant, html=html, subject=subject, variables=variables)
    return Rendered(subject=subject, html=html, text=text, missing=tuple(missing))


# --- master template ---------------------------------------------------------------------------------
def master_template_activate(*, master_template):
    """Make `master_template` the one active wrapper (others are deactivated in the same
    transaction; the partial unique index makes a second active one impossible)."""
    master_template.full_clean()
    with transaction.atomic():
        # Lock every master row (few) so concurrent activations serialise instead of one of
        # them failing on the unique index.
        list(MasterTemplate.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        MasterTemplate.objects.filter(is_active=True).exclude(pk=master_template.pk).update(is_active=False)
        MasterTemplate.objects.filter(pk=master_template.pk).update(is_active=True)
    master_template.is_active = True
    return master_template


def master_template_deactivate(*, master_template):
    MasterTemplate.objects.filter(pk=master_template.pk).update(is_active=False)
    master_template.is_active = False
    return master_template
