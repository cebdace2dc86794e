"""The account book: registering a nickname as an account, logging in to it, changing its
password, giving it up; hashing and checking passwords; throttling guesses.

Passwords are kept only as `scrypt` hashes (stdlib `hashlib.scrypt`, n=2**14, r=8, p=1, a
16-byte random salt, a 32-byte key: about 16 MiB and some 50 ms per check), stored as
`scrypt$N$r$p$salt$key` (base64) so the parameters can be raised later without breaking old
hashes. A check compares in constant time (`hmac.compare_digest`). Attempts are throttled per
address group and per account (a token bucket each, chatkit/ratelimit.py) and across the
server, and a wrong password is answered after a delay; at most two hashes are computed at
once, so guessing cannot take the server's memory or both its cores.

Nothing here runs under the hub's lock: hashing is slow and reading the secret is a database
read. The set of registered names (`registered`) is in memory, so the hub can ask under its
lock whether a nickname is taken by an account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chatkit.net.addresses import address_group, host_of
from chatkit.protocol import FrameError, name_key
from chatkit.ratelimit import KeyedLimiter
from chatkit.store import Account, Records, StoreError

log = logging.getLogger("chatkit.server")

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_KEY = 2**14, 8, 1, 32
SALT_BYTES = 16
MIN_PASSWORD, MAX_PASSWORD = 6, 256
#: per address group and per account: 5 attempts at once, then one every 12 s (5 a minute)
ATTEMPT_RATE, ATTEMPT_BURST = 1 / 12, 5
#: across the server: 60 a minute (an attempt takes two tokens: its address's and its
#: account's, both charged to the global bucket)
GLOBAL_RATE, GLOBAL_BURST = 2.0, 120
WRONG_DELAY = 1.0  # seconds before a wrong password is answered


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
                  ) -> str:
    """The stored form of `password`: `scrypt$N$r$p$salt$key`."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=SCRYPT_KEY,
                         maxmem=2 * 128 * r * n + (1 << 20))
    return "$".join(("scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode(),
                     base64.b64encode(key).decode()))


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        n_, r_, p_ = int(n), int(r), int(p)
        given = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=n_, r=r_,
                               p=p_, dklen=len(expected), maxmem=2 * 128 * r_ * n_ + (1 << 20))
    except (ValueError, TypeError):  # a damaged row: no password matches it
        return False
    return hmac.compare_digest(given, expected)


def check_new_password(password: object) -> str:
    """A password good enough to register with, or FrameError(bad_password)."""
    if not isinstance(password, str) or not password:
        raise FrameError("bad_frame", "field 'password' must be a non-empty string")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise FrameError("weak_password", f"a password must be {MIN_PASSWORD} to "
                         f"{MAX_PASSWORD} characters")
    return password


@dataclass(frozen=True)
class Login:
    """Who a member logged in as: the account's name and whether it is a server admin."""

    name: str
    admin: bool


class AccountBook:
    """See the module docstring. Thread-safe."""

    def __init__(self, records: Records, admins: frozenset[str] = frozenset()) -> None:
        self.records = records
        #: account keys named by `serve --admin` ...
        self.admins = admins
        #: ... that were registered accounts when last (re)loaded: only these are admins, so
        #: whoever registers a name on the list later is not (until the next SIGHUP)
        self.active_admins: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._limiter = KeyedLimiter(rate=ATTEMPT_RATE, burst=ATTEMPT_BURST,
                                     global_rate=GLOBAL_RATE, global_burst=GLOBAL_BURST,
                                     max_keys=4096)
        self._hashing = threading.Semaphore(2)
        self.registered: set[str] = set()
        self.reload()

    def reload(self) -> None:
        """Read the registered names again (at start, and on SIGHUP: `chatkit admin` may have
        changed the database meanwhile)."""
        names = {name_key(a.name) for a in self.records.accounts()}
        with self._lock:
            self.registered = names
            self.active_admins = frozenset(self.admins & names)

    def is_registered(self, nick: str) -> bool:
        return name_key(nick) in self.registered

    def missing_admins(self) -> list[str]:
        """`--admin` names that are not registered accounts (they are not admins)."""
        return sorted(a for a in self.admins if a not in self.registered)

    # ------------------------------------------------------------------ throttling

    def _allow(self, peer: str, account: str) -> bool:
        """One attempt from `peer` at `account`, if both buckets (and the server's) allow."""
        group = "ip:" + address_group(host_of(peer))
        with self._lock:
            return self._limiter.allow(group) and self._limiter.allow("acct:" + name_key(
                account))

    def _hash(self, password: str) -> str:
        with self._hashing:
            return hash_password(password)

    def _verify(self, password: str, secret: str) -> bool:
        with self._hashing:
            return verify_password(password, secret)

    # ------------------------------------------------------------------ the operations

    def identify(self, peer: str, name: str, password: object) -> Login:
        """Log in to account `name`, or raise FrameError (no such account, throttled, wrong
        password after a delay). Slow: never call it under the hub's lock."""
        if not isinstance(password, str) or not password:
            raise FrameError("bad_frame", "field 'password' must be a non-empty string")
        if not self._allow(peer, name):
            log.warning("%s: login to account %s refused: too many attempts", peer, name)
            raise FrameError("too_many_attempts", "too many login attempts; wait a minute "
                             "and try again")
        account = self._account(name)
        if account is None or not self._verify(password, account.secret):
            log.warning("%s: wrong password for account %s", peer, name)
            time.sleep(WRONG_DELAY)  # only this client's thread waits
            # the same answer whether or not the account exists
            raise FrameError("bad_login", f"wrong password for {name}")
        return Login(account.name, account.admin or name_key(account.name) in self.active_admins)

    def register(self, name: str, password: object) -> Login:
        """Make nickname `name` an account with `password`."""
        password = check_new_password(password)
        if self.is_registered(name):
            raise FrameError("nick_registered", f"{name} is registered already")
        if not self._store(self.records.add_account, name, self._hash(password)):
            raise FrameError("nick_registered", f"{name} is registered already")
        with self._lock:
            self.registered.add(name_key(name))
        log.info("account %s registered", name)
        return Login(name, False)  # a new account is nobody's admin (see active_admins)

    def change_password(self, name: str, password: object) -> None:
        password = check_new_password(password)
        if not self._store(self.records.set_secret, name, self._hash(password)):
            raise FrameError("no_account", f"{name} is not registered")
        log.info("account %s changed its password", name)

    def unregister(self, peer: str, name: str, password: object) -> None:
        """Give up account `name`: its password is asked again (a session left open on a
        shared machine cannot throw the name away)."""
        self.identify(peer, name, password)
        self._store(self.records.remove_account, name)
        with self._lock:
            self.registered.discard(name_key(name))
        log.info("account %s unregistered", name)

    def _account(self, name: str) -> Account | None:
        try:
            return self.records.account(name)
        except StoreError as exc:
            log.error("accounts: %s", exc)
            raise FrameError("store_failed", "accounts cannot be read right now; try again "
                             "later") from None

    def _store(self, write: Callable[..., bool], *args: str) -> bool:
        try:
            return bool(write(*args))
        except StoreError as exc:
            log.error("accounts: %s", exc)
            raise FrameError("store_failed", "the account could not be saved; try again "
                             "later") from None
