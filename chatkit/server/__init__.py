"""The chat server: a hub (the conversation: chatkit/server/hub/), doors (ways in: the line
door for chatkit clients and nc/telnet, chatkit/server/doors/line/) and a bus (ordering,
storing and bringing events back to every door: chatkit/server/bus/), wired by `Server`."""

from chatkit.server.config import ServerConfig
from chatkit.server.server import Server

__all__ = ["Server", "ServerConfig"]
