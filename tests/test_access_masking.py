"""Masking rules (T31): what a masked user receives instead of the clear value."""

from __future__ import annotations

import datetime
import decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.access.masking import FULL_MASK, LAST4_MIN_LENGTH, mask_value
from bastion.access.models import MaskRule


@pytest.mark.parametrize(("value", "rule", "masked"), [
    ("4111111111111234", MaskRule.LAST4, "****1234"),
    ("DE89 3704 0044 0532 0130 00", MaskRule.LAST4, "****0 00"),
    ("1234567", MaskRule.LAST4, "****"),  # too short: would reveal most of it
    ("1234", MaskRule.LAST4, "****"),
    ("alice@example.com", MaskRule.EMAIL_DOMAIN, "***@example.com"),
    ("a.b+tag@mail.example.org", MaskRule.EMAIL_DOMAIN, "***@mail.example.org"),
    ('"x@y"@example.com', MaskRule.EMAIL_DOMAIN, "***@example.com"),
    ("not an e-mail", MaskRule.EMAIL_DOMAIN, "****"),
    ("@example.com", MaskRule.EMAIL_DOMAIN, "****"),
    ("alice@", MaskRule.EMAIL_DOMAIN, "****"),
    ("secret", MaskRule.FIXED, "****"),
    ("", MaskRule.FIXED, "****"),
    ("", MaskRule.LAST4, "****"),
])
def test_T31_mask_rules(value, rule, masked):
    assert mask_value(value, rule) == masked


@pytest.mark.parametrize("rule", list(MaskRule))
def test_T31_null_stays_null(rule):
    assert mask_value(None, rule) is None


def test_T31_non_strings_are_masked_as_their_text():
    assert mask_value(12345678901234, MaskRule.LAST4) == "****1234"
    assert mask_value(decimal.Decimal("123456.78"), MaskRule.LAST4) == "****6.78"
    assert mask_value(datetime.date(1984, 7, 31), MaskRule.LAST4) == "****7-31"
    assert mask_value(42, MaskRule.EMAIL_DOMAIN) == FULL_MASK
    assert mask_value(True, MaskRule.FIXED) == FULL_MASK


@pytest.mark.parametrize("blob", [b"\x00secret-bytes-1234", bytearray(b"0123456789"), memoryview(b"0123456789")])
@pytest.mark.parametrize("rule", list(MaskRule))
def test_T31_binary_values_are_masked_completely(blob, rule):
    assert mask_value(blob, rule) == FULL_MASK


def test_T31_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="not a valid MaskRule"):
        mask_value("x", "first4")


@given(st.text())
def test_T31_fixed_reveals_nothing(text):
    assert mask_value(text, MaskRule.FIXED) == FULL_MASK


@given(st.text())
def test_T31_last4_reveals_at_most_four_characters_and_never_the_length(text):
    masked = mask_value(text, MaskRule.LAST4)
    assert masked.startswith(FULL_MASK)
    revealed = masked[len(FULL_MASK):]
    assert len(revealed) <= 4
    if len(text) < LAST4_MIN_LENGTH:
        assert revealed == ""
    else:
        assert text.endswith(revealed)


@given(st.text(), st.text(min_size=1).filter(lambda d: "@" not in d))
def test_T31_email_domain_never_shows_the_local_part(local, domain):
    masked = mask_value(f"{local}@{domain}", MaskRule.EMAIL_DOMAIN)
    assert masked == (f"***@{domain}" if local else FULL_MASK)
