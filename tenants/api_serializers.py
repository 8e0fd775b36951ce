"""What the operators' tenant API reads and answers (tenants.api). Input serializers refuse
fields they do not know, so a typo is a 400 naming it rather than a silent no-op; the values
themselves are checked by the services (tenants.services), which name the field they refuse."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tenants.models import Tenant
from tenants.selectors import tenant_limits
from tenants.tiers import LIMIT_NAMES, Tier


class StrictIn(serializers.Serializer[Any]):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(getattr(self, "initial_data", {}) or {}) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["unknown or read-only field"] for name in unknown})
        return attrs


class TenantCreateIn(StrictIn):
    name = serializers.CharField(max_length=100)
    domain = serializers.CharField(max_length=253)
    tier = serializers.ChoiceField(choices=Tier.choices)
    admin_email = serializers.CharField(max_length=254)
    admin_password = serializers.CharField(
        required=False,
        write_only=True,
        trim_whitespace=False,
        help_text="without it, the answer carries a one-time invitation link for the first admin",
    )
    schema_name = serializers.CharField(
        required=False, max_length=48, help_text="default: derived from the domain's first label"
    )


class LimitsIn(serializers.Serializer[Any]):
    """A patch of the tenant's limit overrides: a limit set to a number overrides the tier's,
    set to null it goes back to the tier's; limits not named keep their override."""

    def to_internal_value(self, data: Any) -> dict[str, int | None]:
        if not isinstance(data, dict) or not data:
            raise serializers.ValidationError(
                {"non_field_errors": [f"give one or more limits to change; known limits: {', '.join(LIMIT_NAMES)}"]}
            )
        errors: dict[str, list[str]] = {}
        for name, value in data.items():
            if name not in LIMIT_NAMES:
                errors[str(name)] = [f"unknown limit; known limits: {', '.join(LIMIT_NAMES)}"]
            elif value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                errors[name] = ["a non-negative whole number, or null for the tier's limit"]
        if errors:
            raise serializers.ValidationError(errors)
        return dict(data)


class TenantOut(serializers.ModelSerializer[Tenant]):
    domain = serializers.SerializerMethodField()
    domains = serializers.SerializerMethodField()
    limits = serializers.SerializerMethodField(help_text="the effective limits: the tier's with the overrides")

    class Meta:
        model = Tenant
        fields = [
            "id",
            "name",
            "schema_name",
            "domain",
            "domains",
            "tier",
            "status",
            "limit_overrides",
            "limits",
            "created_at",
        ]
        read_only_fields = fields

    def get_domain(self, tenant: Tenant) -> str | None:
        return next((d.domain for d in tenant.domains.all() if d.is_primary), None)

    def get_domains(self, tenant: Tenant) -> list[str]:
        return sorted(d.domain for d in tenant.domains.all())

    def get_limits(self, tenant: Tenant) -> dict[str, int]:
        return tenant_limits(tenant=tenant).as_dict()


class TenantCreatedOut(serializers.Serializer[Any]):
    tenant = TenantOut()
    admin_username = serializers.CharField()
    invitation_url = serializers.CharField(allow_null=True, help_text="when no admin password was given")
    from_pool = serializers.BooleanField()
