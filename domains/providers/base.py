"""The one interface every DNS provider client implements, and the value conventions they share.

Values are *logical*: a TXT value is the text a resolver reassembles (its character-strings
concatenated, RFC 7208 §3.3), an MX value is "<preference> <host>", a CNAME value is a host;
host names are lower case without the trailing dot. Each client converts to and from its
provider's wire form, so callers compare and write values the same way everywhere.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass

from .errors import DnsRecordConflict

DEFAULT_TTL = 300
SUPPORTED_TYPES = ("TXT", "MX", "CNAME")
_TXT_STRING_MAX = 255


@dataclass(frozen=True)
class Zone:
    id: str
    name: str

    def as_dict(self):
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class Record:
    name: str
    type: str
    value: str
    ttl: int = DEFAULT_TTL
    # The provider's own id for this one record (Cloudflare); None where the unit is the record set.
    id: str | None = None


def normalize_name(name):
    return name.strip().rstrip(".").lower()


def normalize_value(rtype, value):
    """The comparable form of a logical value (host names folded, trailing dots dropped)."""
    if rtype == "MX":
        preference, host = value.split(None, 1)
        return f"{int(preference)} {normalize_name(host)}"
    if rtype == "CNAME":
        return normalize_name(value)
    return value


def txt_strings(value):
    """Split a TXT value into character-strings of at most 255 bytes (RFC 1035 §3.3.14)."""
    strings, current, size = [], [], 0
    for char in value:
        width = len(char.encode("utf-8"))
        if size + width > _TXT_STRING_MAX:
            strings.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    strings.append("".join(current))
    return strings


def txt_quote(value):
    """Zone-file presentation of a TXT value: quoted strings, each at most 255 bytes."""
    return " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in txt_strings(value))


def txt_unquote(text):
    """The logical value of a TXT record in presentation form (quoted strings, escapes).

    Text that is not quoted at all (Cloudflare stores unquoted content as typed) is returned
    unchanged."""
    text = text.strip()
    if not text.startswith('"'):
        return text
    parts, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        quoted = text[i] == '"'
        if quoted:
            i += 1
        current = []
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                if text[i + 1 : i + 4].isdigit() and len(text[i + 1 : i + 4]) == 3:
                    current.append(chr(int(text[i + 1 : i + 4])))
                    i += 4
                else:
                    current.append(text[i + 1])
                    i += 2
                continue
            if (quoted and char == '"') or (not quoted and char.isspace()):
                i += 1
                break
            current.append(char)
            i += 1
        parts.append("".join(current))
    return "".join(parts)


def mx_parts(value):
    preference, host = normalize_value("MX", value).split(" ", 1)
    return int(preference), host


def to_presentation(rtype, value):
    """Zone-file form of a logical value (what Route 53 and Cloud DNS take): quoted TXT strings,
    absolute host names."""
    if rtype == "TXT":
        return txt_quote(value)
    if rtype == "MX":
        preference, host = mx_parts(value)
        return f"{preference} {host}."
    return normalize_value(rtype, value) + "."


def from_presentation(rtype, text):
    return txt_unquote(text) if rtype == "TXT" else normalize_value(rtype, text)


class DnsProviderClient(ABC):
    """A connected account at one DNS provider. Every method raises `domains.providers.errors`."""

    provider = ""

    @abstractmethod
    def verify(self):
        """Raise DnsProviderAuthFailed unless the credentials work."""

    @abstractmethod
    def list_zones(self):
        """All zones these credentials can see, as [Zone]."""

    @abstractmethod
    def list_records(self, zone, name, rtype):
        """The records of `rtype` at exactly `name` (fully qualified), as [Record]."""

    @abstractmethod
    def create_record(self, zone, name, rtype, value, ttl=DEFAULT_TTL):
        """Add one value at name/type, next to any values already there."""

    @abstractmethod
    def update_record(self, zone, record, value):
        """Replace the value of `record` (as returned by list_records) with `value`."""

    @abstractmethod
    def delete_record(self, zone, record):
        """Remove `record` (as returned by list_records); other values at that name stay."""


@dataclass(frozen=True)
class RecordSet:
    name: str
    type: str
    ttl: int
    values: tuple  # logical values
    raw: object = None  # the provider's own representation, needed to delete it exactly


class RecordSetClient(DnsProviderClient):
    """Providers whose unit of change is the whole record set at (name, type): Route 53, Cloud DNS.

    One-value operations read the set and replace it; the provider's own precondition on the
    replaced set (Cloud DNS deletions must match; Route 53 DELETE must match) turns a concurrent
    edit into DnsRecordConflict instead of a lost update."""

    @abstractmethod
    def _get_record_set(self, zone, name, rtype):
        """The RecordSet at name/type, or None."""

    @abstractmethod
    def _replace_record_set(self, zone, old, new):
        """Make `new` (RecordSet or None) the set at its name/type, where `old` (or None) was."""

    def list_records(self, zone, name, rtype):
        record_set = self._get_record_set(zone, normalize_name(name), rtype)
        if record_set is None:
            return []
        return [Record(name=record_set.name, type=rtype, value=v, ttl=record_set.ttl) for v in record_set.values]

    def create_record(self, zone, name, rtype, value, ttl=DEFAULT_TTL):
        name, value = normalize_name(name), normalize_value(rtype, value)
        old = self._get_record_set(zone, name, rtype)
        values = old.values if old else ()
        if value in values:
            return
        if old and rtype == "CNAME":
            self._conflict(f"{name} already has a CNAME record; a name can hold only one.")
        self._replace_record_set(zone, old, RecordSet(name, rtype, old.ttl if old else ttl, values + (value,)))

    def update_record(self, zone, record, value):
        value = normalize_value(record.type, value)
        old = self._get_record_set(zone, record.name, record.type)
        if old is None or record.value not in old.values:
            self._conflict(f"The {record.type} records at {record.name} changed while being edited; try again.")
        values = []
        for current in old.values:
            replacement = value if current == record.value else current
            if replacement not in values:
                values.append(replacement)
        self._replace_record_set(zone, old, RecordSet(old.name, old.type, old.ttl, tuple(values)))

    def delete_record(self, zone, record):
        old = self._get_record_set(zone, record.name, record.type)
        if old is None or record.value not in old.values:
            return
        values = tuple(v for v in old.values if v != record.value)
        self._replace_record_set(zone, old, RecordSet(old.name, old.type, old.ttl, values) if values else None)

    @staticmethod
    def _conflict(message):
        raise DnsRecordConflict(message)
