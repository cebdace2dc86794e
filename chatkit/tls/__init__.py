"""TLS for chatkit: certificates and fingerprints (`certificates`), the thread-safe channel
used by the server and the clients (`channel`), and trust on first use (`trust`, and per
discovered name: `identities`)."""

from chatkit.tls.certificates import (
    ensure_certificate,
    fingerprint,
    fingerprint_hex,
    parse_fingerprint,
    server_context,
)
from chatkit.tls.channel import (
    TLS_RECORD_START,
    TlsChannel,
    TlsHandshakeError,
    client_context,
    open_client_channel,
)
from chatkit.tls.identities import KnownNames, Sighting
from chatkit.tls.trust import KnownServers, TrustError

__all__ = ["TLS_RECORD_START", "KnownNames", "KnownServers", "Sighting", "TlsChannel",
           "TlsHandshakeError", "TrustError",
           "client_context", "ensure_certificate", "fingerprint", "fingerprint_hex",
           "open_client_channel", "parse_fingerprint", "server_context"]
