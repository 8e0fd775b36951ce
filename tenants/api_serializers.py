"""What the operators' tenant API reads and answers (tenants.api). Input serializers refuse
fields they do not know, so a typo is a 400 naming it rather than a silent no-op; the values
themselves are checked by the services (tenants.services), which name the field they refuse;
the shapes the services take are in the serializers too, so that the OpenAPI schema says them."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers

from config.serializers import NOT_BLANK, StrictIn, TextField
from tenants.models import Tenant
from tenants.selectors import tenant_limits
from tenants.tiers import LIMIT_NAMES, Tier

# What the services check, said in the schema as well (a pattern cannot hold the reserved
# schema names or the password policy: those stay 400s naming the field).
DOMAIN_PATTERN = r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
SCHEMA_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"


class TenantCreateIn(StrictIn):
    """A new tenant: provisioned from the warm pool, its first admin signed up or invited."""

    name = TextField(max_length=100, trim_whitespace=False, validators=[NOT_BLANK])
    domain = TextField(max_length=253, validators=[RegexValidator(DOMAIN_PATTERN, message="not a valid host name")])
    tier = serializers.ChoiceField(choices=Tier.choices)
    admin_email = serializers.EmailField(max_length=254)
    admin_password = TextField(
        required=False,
        write_only=True,
        trim_whitespace=False,
        max_length=4096,
        help_text="without it, the answer carries a one-time invitation link for the first admin",
    )
    schema_name = TextField(
        required=False,
        max_length=48,
        validators=[RegexValidator(SCHEMA_NAME_PATTERN, message="lowercase letter first, then a-z, 0-9 or _")],
        help_text="default: derived from the domain's first label; not public, pg_* or spare_*",
    )


class LimitField(serializers.IntegerField):
    """A limit: a JSON whole number (not a string, a float or a boolean), or null."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class LimitsIn(StrictIn):
    """A patch of the tenant's limit overrides: a limit set to a number overrides the tier's,
    set to null it goes back to the tier's; limits not named keep their override."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return {name: LimitField(min_value=0, allow_null=True, required=False) for name in LIMIT_NAMES}

    def validate(self, attrs: dict[str, Any]) -> dict[str, int | None]:
        if not attrs:
            raise serializers.ValidationError(
                {"non_field_errors": [f"give one or more limits to change; known limits: {', '.join(LIMIT_NAMES)}"]}
            )
        return attrs


class LimitsInScheme(OpenApiSerializerExtension):
    """The schema of LimitsIn says that it names one limit at least."""

    target_class = LimitsIn

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        schema["minProperties"] = 1
        return schema


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


class UsageCountsOut(serializers.Serializer[Any]):
    """A period's (or a day's) usage; the tenant API (agents.usage) answers the same rows."""

    runs = serializers.IntegerField()
    steps = serializers.IntegerField()
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost_usd = serializers.DecimalField(
        max_digits=20, decimal_places=6, coerce_to_string=True, help_text="US dollars, a decimal number as a string"
    )
    approvals = serializers.IntegerField()


class UsageRowOut(UsageCountsOut):
    day = serializers.DateField()
    model = serializers.CharField()


class TenantUsageOut(serializers.Serializer[Any]):
    tenant = serializers.IntegerField(help_text="the tenant's id")
    schema_name = TextField()
    from_ = serializers.DateField(help_text="first day, UTC")
    to = serializers.DateField(help_text="last day, UTC")
    rows = UsageRowOut(many=True, help_text="by day and model")
    totals = UsageCountsOut()

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields
