import pytest

from .world import build_world, shared_dkim_keypair


@pytest.fixture
def worlds(settings, monkeypatch, make_user, make_tenant, make_credential):
    """(victim, attacker): two users, each with a tenant holding one object of every kind."""
    from moto import mock_aws

    import domains.services

    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = True
    monkeypatch.setattr(domains.services, "_new_dkim_keypair", shared_dkim_keypair)
    with mock_aws():
        victim = build_world(make_user=make_user, make_tenant=make_tenant, make_credential=make_credential, label="victim")
        attacker = build_world(make_user=make_user, make_tenant=make_tenant, make_credential=make_credential, label="attacker")
        yield victim, attacker
