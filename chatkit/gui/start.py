"""The start window: servers found on the network, live, and "connect to address…".

Owns: `StartWindow`: the list of servers discovery follows (`chatkit.discovery.watch`, the
same as `chatkit discover --watch`): name, address, people online, TLS (and whether this
machine pinned it), whether it needs a password; an address and a nickname to type (both
remembered from last time); going straight in when exactly one server answers and a
nickname is remembered, or when the server named by `--server` appears (for a cluster's
name, its least loaded node seen so far).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from chatkit.discovery import ServerFound, WatchEvent
from chatkit.gui.bridge import DiscoveryFeed
from chatkit.gui.options import GuiOptions, Target
from chatkit.gui.settings import GuiSettings
from chatkit.net.addresses import parse_address
from chatkit.protocol import DEFAULT_PORT
from chatkit.tls import KnownServers

#: How long the start window listens before going straight in to the only server found.
AUTO_JOIN_MS = 1500
INSTANCE_ROLE = Qt.ItemDataRole.UserRole


def target_of(server: ServerFound) -> Target:
    # a node of a cluster is trusted (and remembered) as CLUSTER/NODE: docs/security.md
    return Target(server.host, server.port, tls=server.tls, name=server.identity,
                  instance=server.instance,
                  announced=server.fingerprint if server.tls else None,
                  password_needed=server.password)


class StartWindow(QWidget):
    """`connect_requested(target, nick)` when the user picks a server."""

    connect_requested = Signal(object, str)

    def __init__(self, options: GuiOptions, gui_settings: GuiSettings, known: KnownServers,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.options = options
        self.known = known
        self.servers: dict[str, ServerFound] = {}
        self.feed: DiscoveryFeed | None = None
        self._auto = not options.host  # going straight in is for a plain `chatkit gui`
        self.setWindowTitle("chatkit — choose a server")
        self.list = QTreeWidget(self)
        self.list.setHeaderLabels(["Server", "Address", "People", "Security", "Password"])
        self.list.setRootIsDecorated(False)
        self.list.itemActivated.connect(lambda _item, _col: self._connect_selected())
        self.list.itemSelectionChanged.connect(self._selected)
        self.searching = QLabel("looking for servers on the network…", self)
        self.searching.setTextFormat(Qt.TextFormat.PlainText)
        self.address = QLineEdit(self)
        self.address.setPlaceholderText("host or host:port")
        if options.host:
            self.address.setText(f"{options.host}:{options.port}")
        elif gui_settings.last_address:
            self.address.setText(gui_settings.last_address)
        self.nick = QLineEdit(self)
        self.nick.setPlaceholderText("your nickname")
        self.nick.setText(options.nick or gui_settings.nick)
        self.button = QPushButton("Connect", self)
        self.button.setDefault(True)
        self.button.clicked.connect(self._connect_clicked)
        self.address.returnPressed.connect(self._connect_clicked)
        self.nick.returnPressed.connect(self._connect_clicked)
        self.error = QLabel(self)
        self.error.setTextFormat(Qt.TextFormat.PlainText)
        self.error.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Connect to address…", self.address)
        form.addRow("Nickname", self.nick)
        row = QHBoxLayout()
        row.addWidget(self.error, 1)
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Servers on your network:", self))
        layout.addWidget(self.list, 1)
        layout.addWidget(self.searching)
        layout.addLayout(form)
        layout.addLayout(row)
        self.resize(640, 420)

    # ------------------------------------------------------------------ discovery

    def watch(self) -> None:
        if self.feed is not None:
            return
        self.feed = DiscoveryFeed(list(self.options.broadcast) or None,
                                  self.options.discovery_port, parent=self)
        self.feed.found.connect(self.on_event)
        self.feed.failed.connect(lambda why: self.searching.setText(f"discovery: {why}"))
        self.feed.start()
        if self._auto:
            QTimer.singleShot(AUTO_JOIN_MS, self._go_straight_in)

    def stop_watching(self) -> None:
        if self.feed is not None:
            self.feed.stop()
            self.feed = None

    def on_event(self, event: WatchEvent) -> None:
        server = event.server
        if event.kind == "leave":
            self.servers.pop(server.instance, None)
        else:
            self.servers[server.instance] = server
        self._fill()
        wanted = (self.options.server_name or "").casefold()
        if wanted and event.kind == "appear" and self.nick.text().strip() and wanted in (
                server.name.casefold(), (server.cluster or "").casefold()):
            if server.cluster and server.cluster.casefold() == wanted:  # a cluster's name:
                server = min((s for s in self.servers.values()   # its least loaded node
                              if (s.cluster or "").casefold() == wanted),
                             key=lambda s: (s.users, s.address))
            self.options = GuiOptions(**{**self.options.__dict__, "server_name": None})
            self.connect_requested.emit(target_of(server), self.nick.text().strip())

    def _fill(self) -> None:
        selected = self.selected_instance()
        self.list.clear()
        pins = self.known.all()
        for server in sorted(self.servers.values(), key=lambda s: (s.name.casefold(), s.port)):
            if not server.tls:
                security = "plain (no TLS)"
            elif pins.get(server.address) == server.fingerprint:
                security = "TLS, trusted"
            else:
                security = "TLS, new"
            password = {True: "needed", False: "", None: "?"}[server.password]
            item = QTreeWidgetItem([server.name, server.address, str(server.users), security,
                                    password])
            item.setData(0, INSTANCE_ROLE, server.instance)
            self.list.addTopLevelItem(item)
            if server.instance == selected:
                self.list.setCurrentItem(item)
        for column in range(self.list.columnCount()):
            self.list.resizeColumnToContents(column)
        count = len(self.servers)
        self.searching.setText(f"{count} server{'s' if count != 1 else ''} found; still "
                               "listening" if count else "looking for servers on the network…")

    def _go_straight_in(self) -> None:
        if self._auto and len(self.servers) == 1 and self.nick.text().strip() \
                and not self.options.server_name and self.isVisible():
            self._auto = False
            server = next(iter(self.servers.values()))
            self.connect_requested.emit(target_of(server), self.nick.text().strip())

    # ------------------------------------------------------------------ choosing

    def selected_instance(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else str(item.data(0, INSTANCE_ROLE))

    def _selected(self) -> None:
        instance = self.selected_instance()
        if instance in self.servers:
            self.address.setText(self.servers[instance].address)

    def _connect_selected(self) -> None:
        instance = self.selected_instance()
        if instance in self.servers:
            self._request(target_of(self.servers[instance]))

    def _connect_clicked(self) -> None:
        instance = self.selected_instance()
        if instance in self.servers and self.servers[instance].address == self.address.text():
            self._request(target_of(self.servers[instance]))
            return
        try:
            host, port = parse_address(self.address.text().strip(), DEFAULT_PORT)
        except ValueError as exc:
            self.set_error(str(exc) if self.address.text().strip() else
                           "choose a server from the list or type its address")
            return
        self._request(Target(host, port, tls=self.options.tls))

    def _request(self, target: Target) -> None:
        nick = self.nick.text().strip()
        if not nick:
            self.set_error("type a nickname first")
            self.nick.setFocus()
            return
        self._auto = False
        self.connect_requested.emit(target, nick)

    def set_error(self, text: str) -> None:
        self.error.setText(text)

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.button.setEnabled(not busy)
        if busy:
            self.error.setText(text)

    def closeEvent(self, event: object) -> None:
        self.stop_watching()
        super().closeEvent(event)  # type: ignore[arg-type]
