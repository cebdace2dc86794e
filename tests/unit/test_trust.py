"""Trust a person can use (issue 12, section 3): both forms of a fingerprint, and
`chatkit trust` listing, adding, forgetting and completing pins."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatkit.cli.app import cli
from chatkit.paths import known_servers_file
from chatkit.tls import (
    KnownServers,
    TrustError,
    ensure_certificate,
    fingerprint,
    fingerprint_hex,
    parse_fingerprint,
)

DIGEST = hashlib.sha256(b"some certificate").digest()
HEX = ":".join(f"{b:02X}" for b in DIGEST)


def _certificate(tmp_path: Path) -> tuple[Path, bytes]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key, "host", ["127.0.0.1"])
    return cert, ssl.PEM_cert_to_DER_cert(cert.read_text())


def test_hex_form_is_what_openssl_prints(tmp_path):
    cert, der = _certificate(tmp_path)
    value = fingerprint(der)
    expected = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert fingerprint_hex(value) == expected
    if shutil.which("openssl"):
        shown = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint",
                                "-sha256"], capture_output=True, text=True, timeout=10).stdout
        assert shown.strip().split("=", 1)[1] == expected
    assert fingerprint_hex("SHA256:nope") is None


@pytest.mark.parametrize("typed", [HEX, HEX.lower(), HEX.replace(":", ""),
                                   f"sha256 Fingerprint={HEX}", f"SHA256 Fingerprint={HEX}\n"])
def test_parse_fingerprint_takes_both_forms(typed):
    canonical = parse_fingerprint(typed)
    assert canonical.startswith("SHA256:") and fingerprint_hex(canonical) == HEX
    assert parse_fingerprint(canonical) == canonical


@pytest.mark.parametrize("typed", ["", "SHA256:", "SHA256:abc", "AB:CD", HEX[:-3],
                                   HEX + ":00", "MD5:" + HEX, "SHA256:" + "!" * 43,
                                   HEX.replace(":", "-")])
def test_parse_fingerprint_refuses_anything_else(typed):
    with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
        parse_fingerprint(typed)


def test_identity_changed_has_one_prefix(tmp_path):
    known = KnownServers(tmp_path / "known.json")
    known.pin("h:1", "SHA256:a")
    with pytest.raises(TrustError) as info:
        known.verify("h:1", "SHA256:b")
    message = str(info.value)
    # click adds "Error: "; the message itself must not start with a second prefix
    assert message.startswith("SERVER IDENTITY CHANGED for h:1"), message
    assert "WARNING" not in message and "chatkit trust --forget h:1" in message
    with pytest.raises(TrustError) as spoofed:
        known.verify("h:2", "SHA256:b", expected="SHA256:c")
    assert not str(spoofed.value).startswith("WARNING")


# --------------------------------------------------------------------------- chatkit trust


def trust(*args: str):
    return CliRunner().invoke(cli, ["trust", *args], prog_name="chatkit")


def test_trust_says_when_nothing_is_pinned():
    result = trust()
    assert result.exit_code == 0
    assert "no pinned servers" in result.output


def test_trust_add_pins_before_first_use():
    value = parse_fingerprint(HEX)
    added = trust("--add", "10.0.0.5:12345", value)
    assert added.exit_code == 0, added.output
    assert HEX in added.output  # the openssl form too, to compare
    assert KnownServers(known_servers_file()).get("10.0.0.5:12345") == value
    # the hex form is accepted and stored in chatkit's form; the same pin again is fine
    again = trust("--add", "10.0.0.5:12345", HEX)
    assert again.exit_code == 0 and "already pinned" in again.output
    listed = trust()
    assert listed.output.split() == ["10.0.0.5:12345", value]


def test_trust_add_validates():
    bad_value = trust("--add", "10.0.0.5:12345", "SHA256:abc")
    assert bad_value.exit_code == 2 and "not a SHA-256 fingerprint" in bad_value.output
    no_port = trust("--add", "10.0.0.5", HEX)
    assert no_port.exit_code == 2 and "give the port" in no_port.output
    bad_address = trust("--add", "10.0.0.5:99999", HEX)
    assert bad_address.exit_code == 2 and "bad port" in bad_address.output
    assert trust("--add", "10.0.0.5:1", HEX).exit_code == 0
    other = trust("--add", "10.0.0.5:1", "SHA256:" + "A" * 43)
    assert other.exit_code == 2 and "--forget 10.0.0.5:1" in other.output
    assert KnownServers(known_servers_file()).get("10.0.0.5:1") == parse_fingerprint(HEX)


def test_trust_forget_host_suggests_its_pins():
    known = KnownServers(known_servers_file())
    known.pin("10.0.0.5:12345", "SHA256:a")
    known.pin("10.0.0.5:4000", "SHA256:b")
    known.pin("10.0.0.6:12345", "SHA256:c")
    result = trust("--forget", "10.0.0.5")
    assert result.exit_code == 2
    assert "did you mean 10.0.0.5:12345 or 10.0.0.5:4000?" in result.output
    assert "10.0.0.6" not in result.output
    nothing = trust("--forget", "10.9.9.9")
    assert nothing.exit_code == 2 and "no certificate pinned for 10.9.9.9" in nothing.output
    assert trust("--forget", "10.0.0.5:4000").exit_code == 0
    assert known.all() == {"10.0.0.5:12345": "SHA256:a", "10.0.0.6:12345": "SHA256:c"}


def test_trust_forget_completes_pinned_addresses():
    known = KnownServers(known_servers_file())
    known.pin("10.0.0.5:12345", "SHA256:a")
    known.pin("192.168.1.20:12345", "SHA256:b")
    result = CliRunner().invoke(cli, [], prog_name="chatkit", env={
        "_CHATKIT_COMPLETE": "bash_complete", "COMP_WORDS": "chatkit trust --forget 10",
        "COMP_CWORD": "3"})
    assert result.output.split() == ["plain,10.0.0.5:12345"]
