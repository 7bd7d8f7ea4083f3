"""Cloudflare and Google Cloud DNS faked at the HTTP transport, with the request and response
shapes of their public API documentation:

- Cloudflare API v4 (https://developers.cloudflare.com/api/): every body is
  {"success", "errors", "messages", "result"} (+ "result_info" on lists); GET /zones,
  GET/POST /zones/{zone_id}/dns_records (filters `name.exact`, `type`, paging `page`/`per_page`),
  PATCH/DELETE /zones/{zone_id}/dns_records/{id}. Served through httpx.MockTransport, handed to
  the official SDK as its http_client.
- Google Cloud DNS v1 (https://cloud.google.com/dns/docs/reference/rest/v1): GET
  projects/{p}/managedZones, GET .../managedZones/{z}/rrsets?name=&type=, POST
  .../managedZones/{z}/changes {"additions", "deletions"} with Cloud DNS's own rules (a deletion
  must match the current set exactly -> 412 conditionNotMet; an addition over an existing set ->
  409 alreadyExists); plus Google's OAuth token endpoint, which checks the service account's
  signed JWT assertion. Served through the `responses` library (requests transport).
"""
import itertools
import json
import re
import uuid
from urllib.parse import parse_qs, urlparse

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import httpx
import jwt
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

_ids = itertools.count(1)
_TIMESTAMP = "2026-01-01T05:20:00.12345Z"


# ----------------------------------------------------------------------------------- Cloudflare


def _cf_body(result=None, *, success=True, errors=(), result_info=None):
    body = {"success": success, "errors": list(errors), "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


class FakeCloudflare:
    TOKEN = "Y2xvdWRmbGFyZS10ZXN0LXRva2VuLTAxMjM0NTY3"  # 40 characters, like a real API token

    def __init__(self):
        self.zones = {}  # id -> zone object
        self.records = {}  # id -> record object
        self.requests = []  # (method, path, query, json body) of every call
        self.fail_next = []  # (status, errors, headers) answered before anything else
        self.writes_before_outage = None  # after this many successful writes, every write answers 500

    # state helpers
    def add_zone(self, name):
        zone_id = uuid.uuid4().hex
        self.zones[zone_id] = {
            "id": zone_id,
            "name": name,
            "status": "active",
            "paused": False,
            "type": "full",
            "development_mode": 0,
            "name_servers": ["bob.ns.cloudflare.com", "lola.ns.cloudflare.com"],
            "original_name_servers": ["ns1.originaldnshost.com", "ns2.originaldnshost.com"],
            "original_registrar": None,
            "original_dnshost": None,
            "created_on": _TIMESTAMP,
            "modified_on": _TIMESTAMP,
            "activated_on": _TIMESTAMP,
            "meta": {"step": 2, "custom_certificate_quota": 0, "page_rule_quota": 3, "phishing_detected": False},
            "owner": {"id": None, "type": "user", "email": None},
            "account": {"id": "01a7362d577a6c3019a474fd6f485823", "name": "Example Account"},
            "permissions": ["#dns_records:edit", "#dns_records:read", "#zone:read"],
            "plan": {"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website", "price": 0, "currency": "USD",
                     "frequency": "", "is_subscribed": False, "can_subscribe": False, "legacy_id": "free",
                     "legacy_discount": False, "externally_managed": False},
            "vanity_name_servers": [],
        }
        return zone_id

    def add_record(self, zone_id, rtype, name, content, *, ttl=1, priority=None):
        record_id = uuid.uuid4().hex
        record = {
            "id": record_id,
            "zone_id": zone_id,
            "zone_name": self.zones[zone_id]["name"],
            "name": name,
            "type": rtype,
            "content": content,
            "proxiable": False,
            "proxied": False,
            "ttl": ttl,
            "settings": {},
            "meta": {},
            "comment": None,
            "tags": [],
            "created_on": _TIMESTAMP,
            "modified_on": _TIMESTAMP,
        }
        if rtype == "MX":
            record["priority"] = priority
        self.records[record_id] = record
        return record_id

    def records_at(self, name, rtype=None):
        return sorted(
            (r for r in self.records.values() if r["name"] == name and rtype in (None, r["type"])),
            key=lambda r: r["content"],
        )

    def writes(self):
        return [r for r in self.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]

    def publish_to(self, dns_server):
        """Serve every record through `dns_server` after each write, as if propagation were instant."""
        self._published = dns_server

    def _publish(self):
        server = getattr(self, "_published", None)
        if server is None:
            return
        server.clear()
        for record in self.records.values():
            if record["type"] == "TXT":
                strings = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, record["content"]).strings
                server.add(record["name"], "TXT", list(strings))
            elif record["type"] == "MX":
                server.add(record["name"], "MX", f"{record['priority']} {record['content']}.")

    @property
    def transport(self):
        return httpx.MockTransport(self._handle)

    def http_client(self):
        return httpx.Client(transport=self.transport)

    # the API
    def _handle(self, request):
        response = self._respond(request)
        if request.method != "GET" and response.status_code == 200:
            self._publish()
        return response

    def _respond(self, request):
        body = json.loads(request.content) if request.content else None
        query = dict(request.url.params)
        path = request.url.path.removeprefix("/client/v4")
        self.requests.append((request.method, path, query, body))
        if self.fail_next:
            status, errors, headers = self.fail_next.pop(0)
            return httpx.Response(status, json=_cf_body(None, success=False, errors=errors), headers=headers)
        if request.method != "GET" and self.writes_before_outage is not None:
            if self.writes_before_outage <= 0:
                return self._error(500, 10001, "Internal server error")
            self.writes_before_outage -= 1
        authorization = request.headers.get("authorization", "")
        if not re.fullmatch(r"Bearer [A-Za-z0-9_-]{40}", authorization):
            return self._error(400, 6003, "Invalid request headers",
                               error_chain=[{"code": 6111, "message": "Invalid format for Authorization header"}])
        if authorization != f"Bearer {self.TOKEN}":
            return self._error(403, 10000, "Authentication error")
        if path == "/zones" and request.method == "GET":
            return self._page(list(self.zones.values()), query)
        match = re.fullmatch(r"/zones/([^/]+)/dns_records(?:/([^/]+))?", path)
        if not match:
            return self._error(400, 7000, "No route for that URI")
        zone_id, record_id = match.groups()
        if zone_id not in self.zones:
            return httpx.Response(400, json=_cf_body(None, success=False, errors=[
                {"code": 7003, "message": f"Could not route to {path}, perhaps your object identifier is invalid?"},
                {"code": 7000, "message": "No route for that URI"},
            ]))
        if record_id is None and request.method == "GET":
            found = [r for r in self.records.values() if r["zone_id"] == zone_id]
            if "name.exact" in query:
                found = [r for r in found if r["name"].lower() == query["name.exact"].lower()]
            if "type" in query:
                found = [r for r in found if r["type"] == query["type"]]
            return self._page(found, query)
        if record_id is None and request.method == "POST":
            return self._create(zone_id, body)
        if record_id not in self.records or self.records[record_id]["zone_id"] != zone_id:
            return self._error(404, 81044, "Record does not exist.")
        if request.method == "PATCH":
            record = self.records[record_id]
            record.update({k: v for k, v in body.items() if k in ("name", "type", "content", "ttl", "priority", "comment")})
            record["modified_on"] = "2026-01-02T00:00:00.00000Z"
            return httpx.Response(200, json=_cf_body(record))
        if request.method == "DELETE":
            del self.records[record_id]
            return httpx.Response(200, json=_cf_body({"id": record_id}))
        return self._error(405, 10405, "Method not allowed")

    def _create(self, zone_id, body):
        name, rtype, content = body["name"], body["type"], body.get("content", "")
        zone_name = self.zones[zone_id]["name"]
        if not (name == zone_name or name.endswith("." + zone_name)):
            return self._error(400, 9007, "Content for record is invalid: name is not in the zone.")
        same_name = [r for r in self.records.values() if r["zone_id"] == zone_id and r["name"] == name]
        if any(r["type"] == "CNAME" for r in same_name):
            return self._error(400, 81054, "A CNAME record with that host already exists.")
        if rtype == "CNAME" and same_name:
            return self._error(400, 81053, "An A, AAAA, or CNAME record with that host already exists.")
        if any(r["type"] == rtype and r["content"] == content and r.get("priority") == body.get("priority") for r in same_name):
            return self._error(400, 81058, "An identical record already exists.")
        record_id = self.add_record(zone_id, rtype, name, content, ttl=body.get("ttl", 1), priority=body.get("priority"))
        return httpx.Response(200, json=_cf_body(self.records[record_id]))

    @staticmethod
    def _page(items, query):
        per_page = int(float(query.get("per_page", 20)))
        page = int(float(query.get("page", 1)))
        chunk = items[(page - 1) * per_page : page * per_page]
        total_pages = max(1, -(-len(items) // per_page))
        return httpx.Response(200, json=_cf_body(chunk, result_info={
            "page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items), "total_pages": total_pages,
        }))

    @staticmethod
    def _error(status, code, message, error_chain=None):
        error = {"code": code, "message": message}
        if error_chain:
            error["error_chain"] = error_chain
        return httpx.Response(status, json=_cf_body(None, success=False, errors=[error]))


# ------------------------------------------------------------------------------ Google Cloud DNS

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_DNS_API = "https://dns.googleapis.com/dns/v1"


def make_service_account(project_id="dispatch-dns-test"):
    """A service-account key file (JSON string) with a fresh RSA key, and its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem.decode(),
        "client_email": f"dispatch-dns@{project_id}.iam.gserviceaccount.com",
        "client_id": "10" + str(next(_ids)).zfill(19),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": GOOGLE_TOKEN_URI,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/dispatch-dns%40{project_id}.iam.gserviceaccount.com",
        "universe_domain": "googleapis.com",
    }
    return json.dumps(info), key.public_key()


def _google_error(status, message, reason, status_name):
    return status, {"Content-Type": "application/json"}, json.dumps({
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status_name,
        }
    })


class FakeCloudDns:
    def __init__(self, project_id, public_key, client_email):
        self.project_id = project_id
        self.public_key = public_key
        self.client_email = client_email
        self.zones = {}  # managed zone name -> zone resource
        self.rrsets = {}  # (zone name, fqdn., type) -> rrset resource
        self.changes = []  # the bodies of every POST .../changes
        self.requests = []  # (method, path, query)
        self.fail_next = []  # (status, message, reason, status name)
        self.token_grants = 0
        self._access_token = "ya29.fake-" + uuid.uuid4().hex

    def add_zone(self, name, dns_name):
        self.zones[name] = {
            "kind": "dns#managedZone",
            "name": name,
            "dnsName": dns_name.rstrip(".") + ".",
            "description": "",
            "id": str(4000000000000000000 + next(_ids)),
            "nameServers": [f"ns-cloud-a{i}.googledomains.com." for i in range(1, 5)],
            "creationTime": "2026-01-01T05:20:00.123Z",
            "visibility": "public",
        }

    def add_rrset(self, zone, name, rtype, rrdatas, ttl=300):
        self.rrsets[(zone, name, rtype)] = {"kind": "dns#resourceRecordSet", "name": name, "type": rtype, "ttl": ttl, "rrdatas": list(rrdatas)}

    def rrset(self, zone, name, rtype):
        return self.rrsets.get((zone, name, rtype))

    def install(self, mock: responses.RequestsMock):
        mock.add_callback(responses.POST, GOOGLE_TOKEN_URI, callback=self._token)
        pattern = re.compile(re.escape(_DNS_API) + r"/projects/[^/]+/managedZones.*")
        for method in (responses.GET, responses.POST):
            mock.add_callback(method, pattern, callback=self._api)

    def _token(self, request):
        form = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {}, json.dumps({"error": "unsupported_grant_type"})
        try:
            claims = jwt.decode(form["assertion"][0], self.public_key, algorithms=["RS256"], audience=GOOGLE_TOKEN_URI)
        except jwt.PyJWTError:
            return 400, {}, json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        if claims.get("iss") != self.client_email or "ndev.clouddns.readwrite" not in claims.get("scope", ""):
            return 400, {}, json.dumps({"error": "invalid_grant", "error_description": "Invalid grant: account not found"})
        self.token_grants += 1
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"access_token": self._access_token, "expires_in": 3599, "token_type": "Bearer"}
        )

    def _api(self, request):
        url = urlparse(request.url)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path.removeprefix("/dns/v1")
        self.requests.append((request.method, path, query))
        if request.headers.get("Authorization") != f"Bearer {self._access_token}":
            return _google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                      "login cookie or other valid authentication credential.", "authError", "UNAUTHENTICATED")
        if self.fail_next:
            return _google_error(*self.fail_next.pop(0))
        match = re.fullmatch(r"/projects/([^/]+)/managedZones(?:/([^/]+)/(rrsets|changes))?", path)
        project, zone, collection = match.groups()
        if project != self.project_id:
            return _google_error(403, f"Forbidden: the caller does not have permission on project {project}",
                                 "forbidden", "PERMISSION_DENIED")
        if zone is None:
            return 200, {}, json.dumps({"kind": "dns#managedZonesListResponse", "managedZones": list(self.zones.values())})
        if zone not in self.zones:
            return _google_error(404, f"The 'parameters.managedZone' resource named '{zone}' does not exist.",
                                 "notFound", "NOT_FOUND")
        if collection == "rrsets":
            found = [r for (z, n, t), r in self.rrsets.items() if z == zone
                     and query.get("name", n) == n and query.get("type", t) == t]
            return 200, {}, json.dumps({"kind": "dns#resourceRecordSetsListResponse", "rrsets": found})
        return self._change(zone, json.loads(request.body))

    def _change(self, zone, body):
        # The API parses ttl as an int32; the library sends it as a JSON string.
        for rrset in body.get("additions", []) + body.get("deletions", []):
            rrset["ttl"] = int(rrset["ttl"])
        for index, deletion in enumerate(body.get("deletions", [])):
            current = self.rrsets.get((zone, deletion["name"], deletion["type"]))
            if current is None or current["rrdatas"] != deletion["rrdatas"] or current["ttl"] != deletion["ttl"]:
                return _google_error(412, f"The resource 'entity.change.deletions[{index}]' named "
                                          f"'{deletion['name']} ({deletion['type']})' does not exist.", "conditionNotMet",
                                     "FAILED_PRECONDITION")
        remaining = {k for k in self.rrsets if k[0] == zone} - {
            (zone, d["name"], d["type"]) for d in body.get("deletions", [])
        }
        for index, addition in enumerate(body.get("additions", [])):
            if (zone, addition["name"], addition["type"]) in remaining:
                return _google_error(409, f"The resource 'entity.change.additions[{index}]' named "
                                          f"'{addition['name']} ({addition['type']})' already exists", "alreadyExists",
                                     "ALREADY_EXISTS")
        self.changes.append(body)
        for deletion in body.get("deletions", []):
            del self.rrsets[(zone, deletion["name"], deletion["type"])]
        for addition in body.get("additions", []):
            self.add_rrset(zone, addition["name"], addition["type"], addition["rrdatas"], addition["ttl"])
        return 200, {}, json.dumps({
            "kind": "dns#change", "id": str(len(self.changes)), "status": "pending", "startTime": "2026-01-01T05:20:01.000Z",
            "additions": body.get("additions", []), "deletions": body.get("deletions", []),
        })
