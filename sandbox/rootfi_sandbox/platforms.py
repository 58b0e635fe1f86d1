"""Platform profiles: what the platform behind RootFi refuses, and the form it keeps records in.

RootFi's API accepts what its docs state (`validation`); the connected platform then takes the
record or refuses it, and keeps what it takes in its own form, which is what a later listing
shows. One profile is active at a time (`Faults.platform`, `--platform`):

- `lenient`: keeps every record as sent and refuses nothing of its own.
- `normalizing`: refuses nothing of its own, like `lenient`, but keeps records the way
  platforms rewrite them: emails trimmed and lower-cased, phones as E.164 (read as `shopify`
  reads them), names trimmed, currencies upper-cased, countries as ISO alpha-2; a value it
  cannot read in that form is kept as sent. The profile to run a client's own tests under:
  whatever it sends, it must recognise its records in the platform's form.
- `shopify`: refuses an email without exactly one `@` and a dot after it, a phone that
  `phonenumbers` cannot read as a possible number (region from the address's country, else
  US), a name over 255 characters, a country `pycountry` does not know; keeps emails trimmed
  and lower-cased, phones as E.164 (`+15550107`), names trimmed, countries as ISO alpha-2.
- `quickbooks`: refuses a blank or missing display name, one over 100 characters, an email
  without exactly one `@`, a phone over 30 characters or with other than phone characters, a
  currency that is not an ISO 4217 code; keeps names trimmed, currencies upper-cased and
  countries as ISO alpha-3 (QuickBooks Online US writes `USA`); phones as typed.

Every profile also refuses an email at a reserved test domain (`refused.example`, or any
`*.invalid`, RFC 2606): the one trigger the tests and the demo use to see a refusal from the
platform whatever the profile. Refusals are `PLATFORM_VALIDATION_ERROR` in RootFi's error
shape: a 400 for a synchronous create, a FAILED job in an async write.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import phonenumbers
import pycountry

from rootfi_sandbox.errors import ApiError

PlatformName = Literal["lenient", "normalizing", "shopify", "quickbooks"]
PLATFORM_ERROR = "PLATFORM_VALIDATION_ERROR"
Record = dict[str, Any]
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE_CHARACTERS = re.compile(r"[0-9 +\-().]*")
"""The characters a phone may hold on the platforms that check it (and in `strict_schema`)."""
SHOPIFY_MAX_NAME = 255
QUICKBOOKS_MAX_NAME = 100
QUICKBOOKS_MAX_PHONE = 30


def _refusal(field: str, reason: str) -> ApiError:
    return ApiError(400, PLATFORM_ERROR, f"Platform rejected the customer: {reason}", field)


def _reserved_domain(record: Record) -> ApiError | None:
    """The test trigger every profile shares: an email at a reserved domain."""
    email = record.get("email")
    if not isinstance(email, str) or "@" not in email:
        return None
    domain = email.rpartition("@")[2].strip().lower()
    if domain == "refused.example" or domain.endswith(".invalid"):
        return _refusal("email", f"email domain {domain} is not accepted")
    return None


def _country(value: str) -> Any:
    """pycountry's country for a code or a name (`BR`, `BRA`, `Brazil`), or None."""
    try:
        return pycountry.countries.lookup(value.strip())
    except LookupError:
        return None


def _address_country(record: Record) -> str | None:
    address = record.get("address")
    country = address.get("country") if isinstance(address, dict) else None
    return country if isinstance(country, str) and country.strip() else None


def _phone_number(record: Record) -> phonenumbers.PhoneNumber | None:
    """The record's phone as `phonenumbers` reads it (None when it is not a possible number)."""
    found = _country(_address_country(record) or "US")
    region = found.alpha_2 if found is not None else "US"
    try:
        number = phonenumbers.parse(record["phone"], region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def _filled(record: Record, field: str) -> str | None:
    value = record.get(field)
    return value if isinstance(value, str) and value.strip() else None


def _shopify_refuses(record: Record) -> ApiError | None:
    if (email := _filled(record, "email")) and not _EMAIL.fullmatch(email.strip()):
        return _refusal("email", "email is invalid")
    if _filled(record, "phone") and _phone_number(record) is None:
        return _refusal("phone", "phone is invalid")
    if (name := _filled(record, "name")) and len(name.strip()) > SHOPIFY_MAX_NAME:
        return _refusal("name", f"name is too long (maximum is {SHOPIFY_MAX_NAME} characters)")
    if (country := _address_country(record)) and _country(country) is None:
        return _refusal("address.country", f"country {country} is not a known country")
    return None


def _shopify_keeps(record: Record) -> Record:
    """The record with emails trimmed and lower-cased, phones E.164, names trimmed and
    countries ISO alpha-2, where a value can be read in that form (else as sent)."""
    kept = dict(record)
    if email := _filled(record, "email"):
        kept["email"] = email.strip().lower()
    if _filled(record, "phone") and (number := _phone_number(record)) is not None:
        kept["phone"] = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if name := _filled(record, "name"):
        kept["name"] = name.strip()
    if (country := _address_country(record)) and (found := _country(country)) is not None:
        kept["address"] = {**record["address"], "country": found.alpha_2}
    return kept


def _normalizing_keeps(record: Record) -> Record:
    """Shopify's forms, and currencies upper-cased as QuickBooks keeps them."""
    kept = _shopify_keeps(record)
    if currency := _filled(record, "currency_id"):
        kept["currency_id"] = currency.strip().upper()
    return kept


def _quickbooks_refuses(record: Record) -> ApiError | None:
    name = _filled(record, "name")
    if name is None:
        return _refusal("name", "a display name is required")
    if len(name.strip()) > QUICKBOOKS_MAX_NAME:
        limit = QUICKBOOKS_MAX_NAME
        return _refusal("name", f"display name is longer than {limit} characters")
    if (email := _filled(record, "email")) and email.count("@") != 1:
        return _refusal("email", "email is not in a valid format")
    phone = _filled(record, "phone")
    if phone and (len(phone) > QUICKBOOKS_MAX_PHONE or not PHONE_CHARACTERS.fullmatch(phone)):
        return _refusal("phone", "phone is not in a valid format")
    currency = _filled(record, "currency_id")
    if currency and pycountry.currencies.get(alpha_3=currency.strip().upper()) is None:
        return _refusal("currency_id", f"currency {currency} is not supported")
    return None


def _quickbooks_keeps(record: Record) -> Record:
    kept = dict(record)
    if name := _filled(record, "name"):
        kept["name"] = name.strip()
    if currency := _filled(record, "currency_id"):
        kept["currency_id"] = currency.strip().upper()
    if (country := _address_country(record)) and (found := _country(country)) is not None:
        kept["address"] = {**record["address"], "country": found.alpha_3}
    return kept


def _nothing(record: Record) -> ApiError | None:
    return None


def _as_sent(record: Record) -> Record:
    return dict(record)


@dataclass(frozen=True, slots=True)
class Platform:
    """One platform's verdict on a record and the form it keeps an accepted one in."""

    name: str
    integration_type: str  # the SDK's IntegrationType of a connection to it
    category: str  # the SDK's IntegrationCategory
    _refuses: Callable[[Record], ApiError | None]
    _keeps: Callable[[Record], Record]

    def refusal(self, record: Record) -> ApiError | None:
        """The platform's refusal of a (schema-valid) record, or None when it takes it."""
        return _reserved_domain(record) or self._refuses(record)

    def keep(self, record: Record) -> Record:
        """The fields the platform stores for an accepted record (what listings show)."""
        return self._keeps(record)


PLATFORMS: dict[str, Platform] = {
    "lenient": Platform("lenient", "ROOTFI_SANDBOX", "ECOMMERCE", _nothing, _as_sent),
    "normalizing": Platform(
        "normalizing", "ROOTFI_SANDBOX", "ECOMMERCE", _nothing, _normalizing_keeps
    ),
    "shopify": Platform("shopify", "SHOPIFY", "ECOMMERCE", _shopify_refuses, _shopify_keeps),
    "quickbooks": Platform(
        "quickbooks", "QUICKBOOKS", "ACCOUNTING", _quickbooks_refuses, _quickbooks_keeps
    ),
}
