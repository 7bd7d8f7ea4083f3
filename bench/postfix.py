"""A private Postfix instance for the benchmark: smtpd with STARTTLS + SASL (Cyrus sasldb)
accepting into its queue and relaying everything to one next hop (the smtp-sink).

It lives entirely under one directory and is registered as an alternate config directory
so the machine's default Postfix instance is left alone."""
import os
import shutil
import subprocess
from pathlib import Path

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench-postfix.localhost
mydomain = localhost
myorigin = $myhostname
mydestination =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
smtpd_banner = $myhostname ESMTP
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {root}/sasl
smtpd_sasl_local_domain = $myhostname
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
anvil_rate_time_unit = 60s
default_process_limit = 100
smtp_tls_security_level = none
smtp_destination_concurrency_limit = 20
default_destination_concurrency_limit = 20
smtp_connection_cache_on_demand = yes
message_size_limit = 26214400
"""

SASL_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
"""


SASLDB = "/etc/sasldb2"


class PostfixInstance:
    def __init__(self, root, *, listen_port, sink_port, cert, key, user="bench", password="bench-password"):
        self.root = Path(root)
        self.listen_port = listen_port
        self.sink_port = sink_port
        self.cert, self.key = cert, key
        self.user, self.password = user, password

    @property
    def username(self):
        return f"{self.user}@bench-postfix.localhost"

    def _postfix(self, *args, check=True):
        return subprocess.run(["postfix", "-c", str(self.root / "etc"), *args], check=check,
                              capture_output=True, text=True)

    def setup(self):
        if self.root.exists():
            self.stop()
            shutil.rmtree(self.root)
        etc = self.root / "etc"
        for sub in ("etc", "queue", "data", "sasl"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        fmt = dict(root=self.root, sink_port=self.sink_port, cert=self.cert, key=self.key)
        (etc / "main.cf").write_text(MAIN_CF.format(**fmt))
        master = []
        for line in Path("/etc/postfix/master.cf").read_text().splitlines():
            fields = line.split()
            if fields and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
                if fields[0] == "smtp" and fields[1] == "inet":
                    fields[0] = f"127.0.0.1:{self.listen_port}"
                fields[4] = "n"  # no chroot: the instance's files live outside any chroot
                line = " ".join(fields[:8]) + (" " + " ".join(fields[8:]) if len(fields) > 8 else "")
            master.append(line)
        (etc / "master.cf").write_text("\n".join(master) + "\n")
        (self.root / "sasl" / "smtpd.conf").write_text(SASL_CONF.format(**fmt))
        # Debian's Cyrus SASL reads the default /etc/sasldb2 whatever smtpd.conf says.
        subprocess.run(["saslpasswd2", "-p", "-c", "-f", SASLDB, "-u", "bench-postfix.localhost", self.user],
                       input=self.password, text=True, check=True)
        shutil.chown(SASLDB, user="postfix")
        os.chmod(SASLDB, 0o600)
        self._register_alternate_config(etc)
        self._postfix("set-permissions", check=False)
        # The queue must be owned by postfix; `postfix check` creates what is missing.
        self._postfix("check", check=False)

    @staticmethod
    def _register_alternate_config(etc):
        # Postfix installed unconfigured ("No configuration", as `make bench` installs it) has no
        # default main.cf, and postconf needs one to register the alternate directory in; the
        # default instance itself is never started.
        default = Path("/etc/postfix/main.cf")
        if not default.exists():
            default.write_text("# Written by Dispatch's bench: the default Postfix instance is not used.\n"
                               "compatibility_level = 3.6\n")
        value = subprocess.run(["postconf", "-h", "alternate_config_directories"], capture_output=True,
                               text=True).stdout.strip()
        dirs = [d for d in value.replace(",", " ").split() if d]
        if str(etc) not in dirs:
            dirs.append(str(etc))
            subprocess.run(["postconf", "-e", f"alternate_config_directories = {' '.join(dirs)}"], check=True)

    def start(self):
        self._postfix("start")

    def stop(self):
        if (self.root / "etc" / "main.cf").exists():
            self._postfix("stop", check=False)

    def queue_is_empty(self):
        out = subprocess.run(["postqueue", "-c", str(self.root / "etc"), "-j"], capture_output=True, text=True)
        return out.stdout.strip() == ""
