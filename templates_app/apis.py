from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from dispatch_site.api.pagination import paginate_by_page
from dispatch_site.api.responses import created, ok, timestamp
from dispatch_site.api.views import TenantScopedAPIView
from tenants.apis import validated

from . import selectors, services


def template_data(template):
    return {
        "id": str(template.id),
        "name": template.name,
        "slug": template.slug,
        "subject": template.subject,
        "html_body": template.html_body,
        "text_body": template.text_body,
        "variables": template.variables,
        "created_at": timestamp(template.created_at),
        "updated_at": timestamp(template.updated_at),
    }


def _body_field():
    # Size is checked by the service (clear TEMPLATE_TOO_LARGE); null means "empty".
    return serializers.CharField(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)


class TemplateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    subject = serializers.CharField(trim_whitespace=False)
    html_body = _body_field()
    text_body = _body_field()
    variables = serializers.JSONField(required=False, allow_null=True)


class TemplateUpdateInput(TemplateInput):
    name = serializers.CharField(max_length=200, required=False)
    subject = serializers.CharField(trim_whitespace=False, required=False)


class RenderInput(serializers.Serializer):
    template_variables = serializers.JSONField(required=False, allow_null=True)
    use_master_template = serializers.BooleanField(required=False, default=False)


class TemplateListView(TenantScopedAPIView):
    @extend_schema(operation_id="templates_list", responses={200: dict}, tags=["templates"])
    def get(self, request, tenant_id):
        items, pagination = paginate_by_page(request, selectors.templates_for(self.tenant))
        return ok([template_data(t) for t in items], pagination=pagination)

    @extend_schema(request=TemplateInput, responses={201: dict}, tags=["templates"])
    def post(self, request, tenant_id):
        data = validated(TemplateInput, request.data)
        template = services.template_create(
            tenant=self.tenant,
            name=data["name"],
            slug=data.get("slug") or None,
            subject=data["subject"],
            html_body=data.get("html_body") or "",
            text_body=data.get("text_body") or "",
            variables=data.get("variables"),
        )
        return created(template_data(template), message="Template created.")


class TemplateDetailView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["templates"])
    def get(self, request, tenant_id, template_id):
        return ok(template_data(selectors.template_get(tenant=self.tenant, template_id=template_id)))

    @extend_schema(request=TemplateUpdateInput, responses={200: dict}, tags=["templates"])
    def put(self, request, tenant_id, template_id):
        """Partial update: only the fields present change (as in the spec's example)."""
        data = validated(TemplateUpdateInput, request.data)
        changes = {field: data[field] for field in ("name", "slug", "subject") if data.get(field) is not None}
        for body in ("html_body", "text_body"):
            if body in data:
                changes[body] = data[body] or ""
        if "variables" in data:
            changes["variables"] = data["variables"] if data["variables"] is not None else {}
        template = services.template_update(tenant=self.tenant, template_id=template_id, **changes)
        return ok(template_data(template), message="Template updated.")

    patch = put

    @extend_schema(responses={200: dict}, tags=["templates"])
    def delete(self, request, tenant_id, template_id):
        services.template_delete(tenant=self.tenant, template_id=template_id)
        return ok(None, message="Template deleted.")


class TemplateRenderView(TenantScopedAPIView):
    @extend_schema(request=RenderInput, responses={200: dict}, tags=["templates"])
    def post(self, request, tenant_id, template_id):
        data = validated(RenderInput, request.data)
        rendered = services.template_preview(
            tenant=self.tenant,
            template_id=template_id,
            variables=data.get("template_variables"),
            use_master_template=data["use_master_template"],
        )
        return ok(
            {
                "subject": rendered.subject,
                "html": rendered.html,
                "text": rendered.text,
                "missing_variables": list(rendered.missing),
            }
        )
