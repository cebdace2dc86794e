"""The start window and clusters: `chatkit gui --server CLUSTER` goes in to a node of that
cluster (a real node, the test's own Redis; discovery on loopback only, a private port)."""

from __future__ import annotations

from chatkit.cli.serve import start_discovery

from gui_helpers import connected_window
from helpers import free_udp_port

LOOPBACK = ("127.255.255.255",)


def test_server_option_takes_a_cluster_name(server_factory, cluster, gui, qtbot):
    port = free_udp_port()
    server_factory(discovery=True, discovery_port=port, name="office")  # not clustered
    node = cluster(name="alpha", cluster_name="staff")
    start_discovery(node, port)
    controller = gui(broadcast=LOOPBACK, discovery_port=port, server_name="staff",
                     nick="bob", insecure=True)
    controller.start()
    window = connected_window(qtbot, controller)
    assert window.session.port == node.port
