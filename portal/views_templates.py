"""Templates: list, create, edit with a live preview, variables, delete."""
import json

from django import forms
from django.http import JsonResponse
from django.shortcuts import redirect, render

from dispatch_site.errors import DispatchError
from templates_app import selectors, services

from .html_preview import srcdoc
from .views_base import TenantPage, object_or_404, run_service

VARIABLES_HELP = ('Optional defaults and descriptions as JSON, e.g. {"first_name": {"default": "there", '
                  '"description": "Recipient\'s first name"}}. Placeholders found in the template are added '
                  'automatically.')


def _json_object(value, field):
    if not value.strip():
        return None
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise forms.ValidationError(f"{field} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise forms.ValidationError(f"{field} must be a JSON object ({{...}}).")
    return data


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.CharField(max_length=100, required=False,
                           help_text="Used as template_id when sending. Left empty: made from the name.")
    subject = forms.CharField(max_length=16 * 1024, help_text="May contain placeholders like {{order_id}}.")
    html_body = forms.CharField(label="HTML body", required=False, strip=False, widget=forms.Textarea(attrs={"rows": 14}))
    text_body = forms.CharField(label="Text body", required=False, strip=False, widget=forms.Textarea(attrs={"rows": 6}))
    variables = forms.CharField(label="Variables (JSON)", required=False, help_text=VARIABLES_HELP,
                                widget=forms.Textarea(attrs={"rows": 4}))

    def clean_variables(self):
        return _json_object(self.cleaned_data["variables"], "Variables")


class PreviewForm(TemplateForm):
    name = forms.CharField(required=False)
    sample_variables = forms.CharField(required=False)
    use_master_template = forms.BooleanField(required=False)

    def clean_sample_variables(self):
        return _json_object(self.cleaned_data["sample_variables"], "Sample values")


def _explicit_variables_json(template):
    explicit = {name: {k: v for k, v in spec.items() if v not in (None, "")} for name, spec in template.variables.items()
                if spec.get("default") is not None or spec.get("description")}
    return json.dumps(explicit, indent=2, ensure_ascii=False) if explicit else ""


def _sample_json(variables):
    return json.dumps({name: spec.get("default") or "" for name, spec in variables.items()}, indent=2, ensure_ascii=False)


class Templates(TenantPage):
    nav_name = "portal:templates"

    def get(self, request, tenant_id):
        return render(request, "portal/templates.html", self.context(templates=selectors.templates_for(self.tenant)))


class TemplateCreate(TenantPage):
    nav_name = "portal:templates"

    def _render(self, request, form):
        return render(request, "portal/template_edit.html", self.context(form=form, template=None, sample="{}"))

    def get(self, request, tenant_id):
        return self._render(request, TemplateForm(initial={
            "subject": "Welcome, {{first_name}}", "html_body": "<h1>Hello {{first_name}}</h1>\n<p>Thanks for signing up.</p>",
        }))

    def post(self, request, tenant_id):
        form = TemplateForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            template = run_service(
                request, services.template_create, tenant=self.tenant, name=data["name"], slug=data["slug"] or None,
                subject=data["subject"], html_body=data["html_body"], text_body=data["text_body"],
                variables=data["variables"], success="Template created.",
            )
            if template:
                return redirect("portal:template", self.tenant.id, template.id)
        return self._render(request, form)


class TemplateEdit(TenantPage):
    nav_name = "portal:templates"

    def _render(self, request, template, form):
        preview = None
        try:
            preview = services.template_preview(tenant=self.tenant, template_id=template.id,
                                                variables=json.loads(_sample_json(template.variables)))
        except DispatchError:
            pass
        return render(request, "portal/template_edit.html", self.context(
            form=form, template=template, sample=_sample_json(template.variables), preview=preview,
        ))

    def get(self, request, tenant_id, template_id):
        template = object_or_404(selectors.template_get, tenant=self.tenant, template_id=template_id)
        form = TemplateForm(initial={
            "name": template.name, "slug": template.slug, "subject": template.subject, "html_body": template.html_body,
            "text_body": template.text_body, "variables": _explicit_variables_json(template),
        })
        return self._render(request, template, form)

    def post(self, request, tenant_id, template_id):
        template = object_or_404(selectors.template_get, tenant=self.tenant, template_id=template_id)
        form = TemplateForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            updated = run_service(
                request, services.template_update, tenant=self.tenant, template_id=template.id, name=data["name"],
                slug=data["slug"] or None, subject=data["subject"], html_body=data["html_body"],
                text_body=data["text_body"], variables=data["variables"] or {}, success="Template saved.",
            )
            if updated:
                return redirect("portal:template", self.tenant.id, template.id)
        return self._render(request, template, form)


class TemplatePreview(TenantPage):
    """The live preview: renders the editor's unsaved content (JSON answer for portal.js).
    A POST like every form here, so Django's CSRF check applies."""

    def post(self, request, tenant_id):
        form = PreviewForm(request.POST)
        if not form.is_valid():
            errors = [f"{error}" for errors in form.errors.values() for error in errors]
            return JsonResponse({"error": " ".join(errors)}, status=400)
        data = form.cleaned_data
        try:
            rendered = services.template_preview_draft(
                tenant=self.tenant, subject=data["subject"], html_body=data["html_body"], text_body=data["text_body"],
                variables=data["variables"], sample_variables=data["sample_variables"],
                use_master_template=data["use_master_template"],
            )
        except DispatchError as exc:
            return JsonResponse({"error": exc.message}, status=400)
        return JsonResponse({"subject": rendered.subject, "html": rendered.html, "srcdoc": srcdoc(rendered.html),
                             "text": rendered.text, "missing_variables": list(rendered.missing)})


class TemplateDelete(TenantPage):
    def post(self, request, tenant_id, template_id):
        template = object_or_404(selectors.template_get, tenant=self.tenant, template_id=template_id)
        run_service(request, services.template_delete, tenant=self.tenant, template_id=template.id,
                    success=f"Template {template.name} deleted.")
        return redirect("portal:templates", self.tenant.id)
