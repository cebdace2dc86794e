"""The message log (SQLite): schema and migrations (`schema`), the server's log (`log`),
reading it offline (`queries`), accounts and moderation (`records`). No sockets, no wire
frames, no command-line wording."""

from chatkit.store.log import FSYNC_POLICIES, MessageStore, SavedTopic, StoredMessage
from chatkit.store.queries import read_history
from chatkit.store.records import Account, Records, RoomSettings, Sanction
from chatkit.store.schema import SCHEMA_VERSION, StoreError, migrate

__all__ = ["FSYNC_POLICIES", "SCHEMA_VERSION", "Account", "MessageStore", "Records",
           "RoomSettings", "Sanction", "SavedTopic", "StoreError", "StoredMessage", "migrate",
           "read_history"]
