import pytest


def publish(dns_server, dns_records, kinds=None):
    """Put the records the API returned into the test DNS server, as a user would."""
    for record in dns_records:
        if kinds is None or record["kind"] in kinds:
            dns_server.add(record["host"], record["record_type"], record["value"])


@pytest.fixture
def add_domain(api, tenant):
    def add(name="example.com", client=None, tenant_id=None):
        r = (client or api).post(f"/api/v1/dispatch/tenants/{tenant_id or tenant.id}/domains", {"domain": name}, format="json")
        assert r.status_code == 201, r.content
        return r.json()["data"]

    return add
