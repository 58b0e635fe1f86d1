"""Is this RootFi record a customer we sent? Values compared the way platforms rewrite them.

A platform keeps a record in its own form, not as it was sent: Shopify stores phones as E.164
(`+15550107` for `555-0107`), many platforms store countries as ISO alpha-2 (`BR` for `BRA` or
`Brazil`), lower-case emails, trim names and drop fields they do not hold. So each field is
compared through its normalized *forms*:

    name, street, …   Unicode NFKC, whitespace collapsed, case-folded
    email             the same (the whole address compares case-insensitively)
    phone             its digits, and its national significant number (`phonenumbers`, with
                      the customer's country as the region): equal with or without a country code
    country           ISO alpha-2 when `pycountry` knows it (alpha-2, alpha-3, names)
    currency_id       case-folded

Two values are equal when they share a form. The fields that identify a customer are a
setting (ROOTFI_MATCH_FIELDS, default `name,email`): a record matches a payload sent when it
is equal on each of them, an address field counting only when the record holds it (platforms
drop what they do not keep). Every other field both sides hold must not contradict it: the
forms absorb what platforms rewrite, so a phone or a country left different is another
customer's (a namesake sent with no email is not adopted for the name alone).

The ledger keeps, for each payload sent, its `Signature`: a short digest of each field's forms
(hashes, not values). Rows written before signatures existed hold a `legacy_key` instead: a
digest of every field, compared as such.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import phonenumbers
import pycountry

from rootfi_sync.models import ADDRESS_FIELDS, DEFAULT_MATCH_FIELDS, MATCHABLE_FIELDS

SIGNATURE_PREFIX = "2;"  # a signature in `sent_keys`; a bare hex digest there is a legacy key
_LEGACY_FIELDS = ("name", "email", "phone", "currency_id")
_NOT_DIGIT = re.compile(r"\D")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(unicodedata.normalize("NFKC", str(value)).split())
    return text or None


def country_code(value: Any) -> str | None:
    """Return a country's ISO alpha-2 code from any of its codes or names (None: unknown)."""
    text = _text(value)
    if text is None:
        return None
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        return None


def _phone_forms(text: str, country: Any) -> set[str]:
    """A phone's digits and, when it can be read, its national significant number."""
    forms = {d} if (d := _NOT_DIGIT.sub("", text)) else set()
    try:
        number = phonenumbers.parse(text, country_code(country))
    except phonenumbers.NumberParseException:
        return forms  # no country code and no country to read it in: its digits alone
    return forms | {phonenumbers.national_significant_number(number)}


def forms(field: str, value: Any, country: Any = None) -> frozenset[str]:
    """Return the normalized forms of a field's value (empty: no value). `country` is the
    customer's, the region a phone without a country code is read in."""
    text = _text(value)
    if text is None:
        return frozenset()
    if field == "phone":
        return frozenset(_phone_forms(text, country))
    if field == "country":
        return frozenset({country_code(text) or text.casefold()})
    return frozenset({text.casefold()})


def _field(record: Mapping[str, Any], name: str) -> Any:
    if name in ADDRESS_FIELDS:
        address = record.get("address")
        return address.get(name) if isinstance(address, Mapping) else None
    return record.get(name)


def _digest(field: str, form: str) -> str:
    return hashlib.sha256(f"{field}:{form}".encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Signature:
    """What identifies one record: each field's normalized forms, as short digests."""

    fields: Mapping[str, frozenset[str]]

    def encode(self) -> str:
        """Return the signature as the ledger keeps it in `sent_keys` (no spaces)."""
        parts = (f"{f}={'/'.join(sorted(d))}" for f, d in sorted(self.fields.items()) if d)
        return SIGNATURE_PREFIX + ";".join(parts)

    @classmethod
    def decode(cls, text: str) -> Signature | None:
        """Return the signature a `sent_keys` entry holds (None: a legacy key)."""
        if not text.startswith(SIGNATURE_PREFIX):
            return None
        pairs = (p.partition("=") for p in text[len(SIGNATURE_PREFIX) :].split(";") if p)
        return cls({f: frozenset(d.split("/")) for f, _, d in pairs})

    def get(self, field: str) -> frozenset[str]:
        return self.fields.get(field, frozenset())


def signature(record: Mapping[str, Any]) -> Signature:
    """Return the signature of a payload or of a record RootFi lists."""
    country = _field(record, "country")
    return Signature(
        {
            f: frozenset(_digest(f, x) for x in forms(f, _field(record, f), country))
            for f in MATCHABLE_FIELDS
        }
    )


def identifies(sent: Signature, found: Signature, fields: Iterable[str]) -> bool:
    """Whether `found` is equal to `sent` on every identifying field (an address field only
    where the record holds it)."""
    for f in fields:
        mine, theirs = sent.get(f), found.get(f)
        if f in ADDRESS_FIELDS and not (mine and theirs):
            continue
        if (mine or theirs) and not mine & theirs:
            return False
    return True


def contradicts(sent: Signature, found: Signature) -> bool:
    """Whether a field both hold a value for differs (a record of another customer)."""
    return any(
        sent.get(f) and found.get(f) and not sent.get(f) & found.get(f) for f in MATCHABLE_FIELDS
    )


def _norm(value: Any) -> str | None:
    # Exactly as those rows were written: no NFKC, and "  " is "" (not None).
    if value is None or value == "":
        return None
    return " ".join(str(value).split()).casefold()


def legacy_key(record: Mapping[str, Any]) -> str:
    """Return the match key rows written before signatures hold: a digest of every field,
    trimmed, spaces collapsed and case-folded (compared exactly)."""
    values = tuple(_norm(record.get(f)) for f in _LEGACY_FIELDS) + tuple(
        _norm(_field(record, f)) for f in ADDRESS_FIELDS
    )
    text = json.dumps(values, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Sent(Protocol):
    """A customer a lookup matches: its id, and the signatures of what was sent for it."""

    @property
    def customer_id(self) -> str: ...

    @property
    def keys(self) -> tuple[str, ...]: ...


@dataclass(slots=True)
class Matches:
    """What a lookup found: each customer's record, and the ids of other records that match
    that customer as well (duplicates found in RootFi)."""

    records: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    duplicates: dict[str, tuple[str, ...]] = field(default_factory=dict)


class _Pool:
    """The records a lookup may adopt, in order, indexed by their first identifying field."""

    def __init__(self, records: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> None:
        self.records = sorted(records, key=_rootfi_order)
        self.signatures = [signature(r) for r in self.records]
        self.fields = tuple(fields)
        self.lead = next(f for f in fields if f not in ADDRESS_FIELDS)
        self.index: dict[str, list[int]] = defaultdict(list)
        for n, sig in enumerate(self.signatures):
            for digest in sig.get(self.lead) or {""}:
                self.index[digest].append(n)
        self._legacy: dict[str, list[int]] | None = None

    def legacy(self, key: str) -> list[int]:
        if self._legacy is None:  # rows written by the old code only: computed once if asked
            self._legacy = defaultdict(list)
            for n, record in enumerate(self.records):
                self._legacy[legacy_key(record)].append(n)
        return self._legacy.get(key, [])

    def matching(self, item: Sent) -> list[int]:
        """Return the numbers of the records matching what was sent for the item, in order."""
        found: set[int] = set()
        for key in item.keys:
            sent = Signature.decode(key)
            if sent is None:
                found.update(self.legacy(key))
                continue
            near = {n for d in sent.get(self.lead) or {""} for n in self.index.get(d, ())}
            found.update(
                n
                for n in near
                if identifies(sent, self.signatures[n], self.fields)
                and not contradicts(sent, self.signatures[n])
            )
        return sorted(found)


def match_records(
    items: Sequence[Sent],
    records: Iterable[Mapping[str, Any]],
    taken: set[str],
    fields: Sequence[str] = DEFAULT_MATCH_FIELDS,
) -> Matches:
    """Pair items with RootFi records matching what they sent; report the records left over
    that match a customer as well as its own."""
    pool = _Pool((r for r in records if str(r.get("rootfi_id")) not in taken), fields)
    matching = {i.customer_id: pool.matching(i) for i in items}
    used: set[int] = set()
    found = Matches()
    for item in items:
        pick = next((n for n in matching[item.customer_id] if n not in used), None)
        if pick is not None:
            used.add(pick)
            found.records[item.customer_id] = pool.records[pick]
    for cid in found.records:
        extra = [n for n in matching[cid] if n not in used]
        used.update(extra)
        if extra:
            found.duplicates[cid] = tuple(str(pool.records[n].get("rootfi_id")) for n in extra)
    return found


def _rootfi_order(record: Mapping[str, Any]) -> tuple[int, str]:
    value = str(record.get("rootfi_id"))
    return (int(value), "") if value.isdigit() else (0, value)
