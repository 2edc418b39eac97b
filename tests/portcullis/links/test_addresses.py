"""``allowed_ips``: what is accepted and how it is stored, and which client addresses match."""

from __future__ import annotations

import pytest

from portcullis.links.addresses import allows, normalise, normalise_all


@pytest.mark.parametrize(("given", "stored"), [
    ("192.0.2.7", "192.0.2.7"),
    (" 192.0.2.7 ", "192.0.2.7"),
    ("10.1.2.3/8", "10.0.0.0/8"),  # host bits dropped
    ("198.51.100.0/24", "198.51.100.0/24"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
    ("2001:db8::/32", "2001:db8::/32"),
    ("0.0.0.0/0", "0.0.0.0/0"),
])
def test_entries_are_normalised(given: str, stored: str) -> None:
    assert normalise(given) == stored


@pytest.mark.parametrize("bad", ["", "localhost", "256.0.0.1", "10.0.0.0/33", "::1/129",
                                 "1.2.3", "10.0.0.0/8/8", "fe80::1%eth0", "fe80::1%eth0/64",
                                 "192.0.2.7 x"])
def test_anything_else_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        normalise(bad)


def test_duplicates_are_dropped_in_order() -> None:
    assert normalise_all(["10.0.0.1/8", "192.0.2.1", "10.0.0.0/8"]) == ["10.0.0.0/8",
                                                                          "192.0.2.1"]


def test_no_list_allows_everyone() -> None:
    assert allows(None, "203.0.113.9") and allows(None, None)


@pytest.mark.parametrize(("client", "allowed"), [
    ("198.51.100.7", True), ("198.51.100.255", True), ("198.51.101.1", False),
    ("192.0.2.7", True), ("192.0.2.8", False),
    ("2001:db8::1", True), ("2001:db8::2", False),
    ("::ffff:198.51.100.9", True),  # an IPv4-mapped peer is its IPv4 address
    ("::ffff:203.0.113.1", False),
    ("not-an-address", False), ("", False), (None, False),
])
def test_only_listed_addresses_match(client: str | None, allowed: bool) -> None:
    entries = normalise_all(["198.51.100.0/24", "192.0.2.7", "2001:db8::1"])
    assert allows(entries, client) is allowed


def test_an_empty_list_allows_nobody() -> None:
    """Never stored (the API and the table refuse it), but it must not mean everyone."""
    assert not allows([], "192.0.2.7")
