"""A Kommo account given as a subdomain, a host, or an address pasted from the browser."""

from __future__ import annotations

import pytest

from core.errors import InvalidInput
from core.kommo.auth.connections import parse_account_host


@pytest.mark.parametrize(("given", "expected"), [
    ("acme", ("acme", "kommo.com")),
    ("Acme.Kommo.com", ("acme", "kommo.com")),
    ("https://acme.amocrm.ru/leads/pipeline/7?skip_filter=Y#x", ("acme", "amocrm.ru")),
    ("  acme.kommo.com/dashboard/ ", ("acme", "kommo.com")),
    ("http://shop-2.amocrm.com", ("shop-2", "amocrm.com")),
])
def test_accepted_addresses(given, expected):
    assert parse_account_host(given) == expected


@pytest.mark.parametrize("given", ["", "www.kommo.com", "acme.example.com", "ftp://acme.kommo.com",
                                   "acme.kommo.com.evil.io", "javascript:alert(1)", "https://[::1]/", "a b"])
def test_refused_addresses(given):
    with pytest.raises(InvalidInput):
        parse_account_host(given)


def test_a_bare_subdomain_is_refused_where_a_domain_is_required():
    with pytest.raises(InvalidInput):
        parse_account_host("acme", require_domain=True)
    assert parse_account_host("https://acme.kommo.com/", require_domain=True) == ("acme", "kommo.com")
