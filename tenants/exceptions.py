from config.errors import VigilError


class ProvisioningError(VigilError):
    code = "provisioning_refused"
    status = 400


class TenantNotFound(VigilError):
    code = "tenant_not_found"
    status = 404


class TenantStateError(VigilError):
    code = "tenant_state_conflict"
    status = 409


class PoolEmpty(VigilError):
    code = "spare_pool_empty"
    status = 409
