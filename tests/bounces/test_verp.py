import pytest

from sending.bounces import verp


def test_it_round_trips_a_recipient_id():
    address = verp.encode(123456789, "bounces.example.com", secret="s3cret")
    assert address.startswith("b-21i3v9-") and address.endswith("@bounces.example.com")
    assert verp.decode(address, secret="s3cret") == 123456789


def test_it_survives_case_changes_and_angle_brackets():
    address = verp.encode(42, "Bounces.Example.com", secret="k")
    assert verp.decode(f"<{address.upper()}>", secret="k") == 42


def test_a_forged_or_tampered_address_decodes_to_none():
    address = verp.encode(1000, "bounces.example.com", secret="k")
    local, domain = address.split("@")
    prefix, id36, tag = local.split("-")
    other_id = verp.encode(1001, "bounces.example.com", secret="k").split("-")[1]
    assert verp.decode(f"{prefix}-{other_id}-{tag}@{domain}", secret="k") is None  # id swapped
    assert verp.decode(f"{prefix}-{id36}-{'a' * len(tag)}@{domain}", secret="k") is None  # tag guessed
    assert verp.decode(address, secret="another-key") is None  # signed by someone else


@pytest.mark.parametrize("address", [
    "", "nobody", "kijitora@example.com", "b-zz@bounces.example.com", "b--abcdefghij@x.example",
    "b-1-abcdefghij", "b-1-ABCDEFGHIJK@x.example", "fbl@bounces.example.com", "b-" + "9" * 40 + "-aaaaaaaaaa@x.y",
])
def test_anything_else_is_not_a_verp_address(address):
    assert verp.decode(address, secret="k") is None


def test_it_uses_the_django_secret_key_by_default(settings):
    settings.SECRET_KEY = "one-key-" * 5
    address = verp.encode(7, "b.example.org")
    assert verp.decode(address) == 7
    settings.SECRET_KEY = "another-key-" * 5
    assert verp.decode(address) is None


def test_it_refuses_a_non_integer_id():
    with pytest.raises(ValueError):
        verp.encode(-1, "b.example.org", secret="k")
    with pytest.raises(ValueError):
        verp.encode("12", "b.example.org", secret="k")


def test_feedback_address():
    assert verp.feedback_address("Bounces.Example.com") == "fbl@bounces.example.com"
    assert verp.is_feedback_address("<FBL@bounces.example.com>")
    assert not verp.is_feedback_address("b-1-aaaaaaaaaa@bounces.example.com")
    assert verp.return_path_domain_of("b-1-aaaaaaaaaa@Bounces.Example.com") == "bounces.example.com"


def test_the_format_is_stable_so_bounces_of_mail_sent_before_an_upgrade_still_decode():
    # A bounce can arrive days after the message left: the tag derivation must never change.
    address = "b-21i3v9-k3teauiz2t@bounces.example.com"
    assert verp.encode(123456789, "bounces.example.com", secret="known-secret") == address
    assert verp.decode(address, secret="known-secret") == 123456789
