"""The server's certificate: a self-signed EC certificate made on first start (key file 0600),
loading a given one, and SHA-256 fingerprints (what clients pin)."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import os
import re
import ssl
from pathlib import Path

from chatkit.errors import ChatkitError


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, written the way OpenSSH writes key fingerprints."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


_HEX_DIGITS = re.compile(r"^[0-9A-Fa-f]{64}\Z")
_B64_DIGEST = re.compile(r"^[A-Za-z0-9+/]{43}=?\Z")


def _digest(value: str) -> bytes | None:
    """The 32-byte SHA-256 digest a `SHA256:...` fingerprint encodes, None if it is not one."""
    if not value.startswith("SHA256:") or not _B64_DIGEST.match(value[7:]):
        return None
    encoded = value[7:].rstrip("=")
    try:
        digest = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return digest if len(digest) == 32 else None


def fingerprint_hex(value: str) -> str | None:
    """A `SHA256:...` fingerprint in the form `openssl x509 -fingerprint -sha256` prints it
    (`AB:CD:...`, upper case, colon-separated), so s_client/ncat users can compare; None when
    `value` is not a SHA-256 fingerprint."""
    digest = _digest(value)
    return None if digest is None else ":".join(f"{byte:02X}" for byte in digest)


def parse_fingerprint(text: str) -> str:
    """A fingerprint someone typed or pasted, as chatkit writes it (`SHA256:` + base64).

    Takes chatkit's form, or the hex form openssl prints (with or without colons, either case,
    after an optional `sha256 Fingerprint=`); raises ValueError saying what is expected.
    """
    value = text.strip()
    if value.lower().startswith("sha256 fingerprint="):
        value = value.split("=", 1)[1].strip()
    if _digest(value) is not None:
        return value.rstrip("=")
    digits = value.replace(":", "")
    if ":" in value and not re.fullmatch(r"([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}", value):
        digits = ""
    if _HEX_DIGITS.match(digits):
        digest = bytes.fromhex(digits)
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    raise ValueError(f"{text.strip()!r} is not a SHA-256 fingerprint: expected SHA256: and 43 "
                     "base64 characters (as `chatkit serve` prints it) or 32 hex bytes "
                     "AB:CD:... (as `openssl x509 -fingerprint -sha256` prints it)")


# --------------------------------------------------------------------------- server certificate


def ensure_certificate(cert_path: Path, key_path: Path, hostname: str,
                       addresses: list[str]) -> None:
    """Create a self-signed EC certificate and key unless both exist (key mode 0600)."""
    if cert_path.exists() and key_path.exists():
        return
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"chatkit {hostname}"[:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if hostname and hostname != "localhost":
        alt_names.append(x509.DNSName(hostname))
    for address in addresses:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            continue
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    os.chmod(key_path, 0o600)  # also when the file existed with wider permissions
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def why_unusable(cert_path: Path, key_path: Path, exc: Exception) -> str:
    """A certificate/key pair OpenSSL refused, in words ("[SSL] PEM lib" says nothing)."""
    try:
        cert_text = cert_path.read_text(errors="replace")
        key_text = key_path.read_text(errors="replace")
    except OSError as error:
        return error.strerror or str(error)
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        return f"{cert_path} is not a PEM certificate (-----BEGIN CERTIFICATE-----)"
    if "ENCRYPTED PRIVATE KEY" in key_text or "Proc-Type: 4,ENCRYPTED" in key_text:
        return f"{key_path} is protected by a passphrase; give the key unencrypted"
    if "PRIVATE KEY-----" not in key_text:
        return f"{key_path} is not a PEM private key (-----BEGIN PRIVATE KEY-----)"
    reason = str(getattr(exc, "reason", "") or "")
    if "KEY_VALUES_MISMATCH" in reason or "KEY_VALUES_MISMATCH" in str(exc):
        return f"{key_path} is not the key of this certificate"
    return reason.replace("_", " ").lower() or str(exc)


def check_key_mode(key_path: Path) -> None:
    """Refuse a private key other users can read or write (like ssh does): whoever read it
    can impersonate the server, so using it silently would hide that. Group access is allowed
    (a key shared with a service group, as ssl-cert setups do)."""
    if os.name != "posix":
        return
    try:
        mode = os.stat(key_path).st_mode & 0o777
    except OSError:
        return  # loading it says what is wrong
    if mode & 0o007:
        raise ChatkitError(
            f"server key {key_path} is accessible to other users (mode {mode:04o}): anyone "
            f"who read it can impersonate this server; run `chmod 600 {key_path}` (and if "
            "others may have copied it, delete the key and its certificate to make new ones)")


def server_context(cert_path: Path, key_path: Path) -> tuple[ssl.SSLContext, str]:
    """A server TLS context and the certificate's fingerprint (the key must not be
    accessible to other users: `check_key_mode`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise ChatkitError(f"cannot use TLS certificate {cert_path} with key {key_path}: "
                           f"{why_unusable(Path(cert_path), Path(key_path), exc)}") from None
    check_key_mode(Path(key_path))  # a usable key, but one others can read
    der = ssl.PEM_cert_to_DER_cert(Path(cert_path).read_text())
    return context, fingerprint(der)
