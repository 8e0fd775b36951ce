import time
from tenants.services import spare_create
def test_smoke(db):
    t=time.perf_counter(); spare_create(); print("spare_create", time.perf_counter()-t)
