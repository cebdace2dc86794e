"""The message log (SQLite): schema and migrations (`schema`), the server's log (`log`), and
reading it offline (`queries`). No sockets, no wire frames, no command-line wording."""

from chatkit.store.log import FSYNC_POLICIES, MessageStore, SavedTopic, StoredMessage
from chatkit.store.queries import read_history
from chatkit.store.schema import SCHEMA_VERSION, StoreError, migrate

__all__ = ["FSYNC_POLICIES", "SCHEMA_VERSION", "MessageStore", "SavedTopic", "StoreError",
           "StoredMessage", "migrate", "read_history"]
