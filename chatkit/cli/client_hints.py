"""The flags that fix a client-side error: what `chatkit join` and `chatkit send` add to it.

The client core says what is wrong (no nickname, a TLS handshake that failed); this module
adds which option of these commands changes it, keeping the one-line message users know.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from chatkit.errors import ConfigError, UnreachableError


@contextlib.contextmanager
def client_flag_hints() -> Iterator[None]:
    # Imported here: every command module is loaded at start-up (shell completion too).
    from chatkit.client import NickMissing
    from chatkit.tls import TlsHandshakeError

    try:
        yield
    except NickMissing as exc:
        if exc.no_terminal:
            raise ConfigError("--nick is required when stdin is not a terminal "
                              "(or set CHATKIT_NICK)") from None
        raise ConfigError("no nickname given (use --nick or set CHATKIT_NICK)") from None
    except TlsHandshakeError as exc:
        raise UnreachableError(
            f"TLS handshake with {exc.host} failed: {exc.reason} (is it a chatkit server with "
            "TLS? an older or --no-tls server needs --no-tls)") from None
