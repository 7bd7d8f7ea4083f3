"""Automatic DNS setup: from the records a domain needs and what the zone holds now, decide
what to create, update or leave alone (plan), then write it (apply).

Planning reads everything and validates everything (SPF lookup limit, DMARC address) before the
first write, so a refusal never leaves a half-configured zone. Each step compares with what is
published, so running the setup again changes nothing ("unchanged").
"""
from dataclasses import dataclass, field

from dispatch_site.errors import DispatchError, ValidationFailed

from .base import Record, normalize_name, normalize_value
from .dmarc import dmarc_with_rua, fresh_dmarc, is_dmarc
from .spf import is_spf, spf_append

SPF_ACTIONS = ("append", "overwrite", "skip")
DMARC_ACTIONS = ("create", "update", "skip")
CREATED, UPDATED, UNCHANGED, SKIPPED = "created", "updated", "unchanged", "skipped"


@dataclass
class Step:
    kind: str
    record_type: str
    host: str
    value: str  # what the record holds once the step is applied (or now, when nothing changes)
    status: str
    message: str
    previous: str | None = None
    create: bool = False
    update: Record | None = None
    delete: list = field(default_factory=list)

    def apply(self, client, zone):
        if self.update is not None:
            client.update_record(zone, self.update, self.value)
        elif self.create:
            client.create_record(zone, self.host, self.record_type, self.value)
        for record in self.delete:
            client.delete_record(zone, record)

    def as_dict(self):
        data = {"kind": self.kind, "record_type": self.record_type, "host": self.host, "value": self.value,
                "status": self.status, "message": self.message}
        if self.previous is not None:
            data["previous"] = self.previous
        return data


def zone_covers(zone_name, host):
    zone_name, host = normalize_name(zone_name), normalize_name(host)
    return host == zone_name or host.endswith("." + zone_name)


def plan_setup(client, zone, expected, *, include_host, spf_action, dmarc_action, dmarc_rua_email=None):
    """The Steps for `expected` (objects with kind, record_type, host, value), in that order."""
    if dmarc_action == "update" and not dmarc_rua_email:
        raise ValidationFailed(
            "dmarc_action=update needs dmarc_rua_email (the address to add to the DMARC rua tag).",
            details={"dmarc_rua_email": ["Required when dmarc_action is update."]},
        )
    outside = [r.host for r in expected if not zone_covers(zone.name, r.host)]
    if outside:
        raise ValidationFailed(
            f"Zone {zone.name} does not contain {outside[0]}: choose the zone that holds the domain.",
            code="DNS_ZONE_MISMATCH",
        )
    current = {}

    def records_at(host, rtype):
        key = (normalize_name(host), rtype)
        if key not in current:
            current[key] = client.list_records(zone, host, rtype)
        return current[key]

    steps = []
    for record in expected:
        existing = records_at(record.host, record.record_type)
        if record.kind == "verification":
            steps.append(_add_alongside(record, existing))
        elif record.kind == "dkim":
            steps.append(_dkim(record, existing))
        elif record.kind == "return_path":
            steps.append(_only_value(record, existing))
        elif record.kind == "return_path_spf":
            # The return-path subdomain is ours: its SPF always gets our include (merged, never replaced).
            steps.append(_spf(record, existing, "append", include_host))
        elif record.kind == "spf":
            steps.append(_spf(record, existing, spf_action, include_host))
        elif record.kind == "dmarc":
            steps.append(_dmarc(record, existing, dmarc_action, dmarc_rua_email))
    return steps


def apply_setup(client, zone, steps):
    """Write the steps in order. A provider failure part-way names what was already written
    (running the setup again is safe: finished steps come back "unchanged")."""
    done = []
    for step in steps:
        try:
            step.apply(client, zone)
        except DispatchError as exc:
            exc.details = {**(exc.details or {}), "failed_record": step.as_dict(), "completed": done}
            raise
        if step.status in (CREATED, UPDATED):
            done.append(step.as_dict())
    return [s.as_dict() for s in steps]


def _step(record, status, message, value=None, **changes):
    return Step(record.kind, record.record_type, record.host, value if value is not None else record.value,
                status, message, **changes)


def _add_alongside(record, existing):
    """A value that may share its name with others' values (tenants verifying the same domain)."""
    if any(r.value == record.value for r in existing):
        return _step(record, UNCHANGED, "Already published.")
    return _step(record, CREATED, "Created.", create=True)


def _compact(value):
    return "".join(value.split())


def _dkim(record, existing):
    if any(_compact(r.value) == _compact(record.value) for r in existing):
        return _step(record, UNCHANGED, "Already published.")
    # The selector's name belongs to this domain's key: an older key there is replaced.
    keys = [r for r in existing if r.value.lower().startswith("v=dkim1") or "p=" in r.value]
    if keys:
        return _step(record, UPDATED, "Replaced an older DKIM key under this selector.",
                     previous=keys[0].value, update=keys[0], delete=keys[1:])
    return _step(record, CREATED, "Created.", create=True)


def _only_value(record, existing):
    """A name that is ours alone (the return-path MX): exactly our value, nothing else."""
    wanted = normalize_value(record.record_type, record.value)
    ours = [r for r in existing if r.value == wanted]
    others = [r for r in existing if r.value != wanted]
    if ours and not others:
        return _step(record, UNCHANGED, "Already published.", value=wanted)
    if ours:
        return _step(record, UPDATED, "Removed other records that would receive the bounces.",
                     value=wanted, previous=", ".join(r.value for r in others), delete=others)
    if others:
        return _step(record, UPDATED, "Replaced the existing record.", value=wanted,
                     previous=", ".join(r.value for r in others), update=others[0], delete=others[1:])
    return _step(record, CREATED, "Created.", value=wanted, create=True)


def _spf(record, existing, action, include_host):
    if action == "skip":
        return _step(record, SKIPPED, "spf_action=skip: SPF left as it is.")
    spf = [r for r in existing if is_spf(r.value)]
    if not spf:
        return _step(record, CREATED, "Created.", create=True)
    if action == "overwrite":
        value = record.value
    else:
        value = spf_append([r.value for r in spf], include_host)
    previous = " | ".join(r.value for r in spf)
    if len(spf) == 1 and spf[0].value == value:
        return _step(record, UNCHANGED, "Already published.", value=value)
    message = "Replaced the SPF record." if action == "overwrite" else f"Added include:{include_host} to the SPF record."
    if len(spf) > 1:
        message += f" Merged {len(spf)} SPF records into one (a domain may publish only one)."
    return _step(record, UPDATED, message, value=value, previous=previous, update=spf[0], delete=spf[1:])


def _dmarc(record, existing, action, rua_email):
    if action == "skip":
        return _step(record, SKIPPED, "dmarc_action=skip: DMARC left as it is.")
    dmarc = [r for r in existing if is_dmarc(r.value)]
    if not dmarc:
        return _step(record, CREATED, "Created.", value=fresh_dmarc(rua_email), create=True)
    current = dmarc[0]
    if action == "create":
        if current.value == fresh_dmarc(rua_email):
            return _step(record, UNCHANGED, "Already published.", value=current.value)
        return _step(record, SKIPPED, "A DMARC record already exists and dmarc_action=create keeps it; "
                                      "use dmarc_action=update to add the report address.", value=current.value)
    value = dmarc_with_rua(current.value, rua_email)
    if value == current.value:
        return _step(record, UNCHANGED, "Already publishes this report address.", value=value)
    return _step(record, UPDATED, "Added the report address; policy and other tags kept.",
                 value=value, previous=current.value, update=current)
