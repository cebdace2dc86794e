"""The start window and clusters: `chatkit gui --server CLUSTER` goes in to a node of that
cluster (discovery on loopback only, a private port), and trusts it as CLUSTER/NODE."""

from __future__ import annotations

from typing import Any

from chatkit.cli.serve import start_discovery

from gui_helpers import connected_window
from helpers import free_udp_port

LOOPBACK = ("127.255.255.255",)


def test_server_option_takes_a_cluster_name(server_factory, gui, qtbot):
    port = free_udp_port()
    server_factory(discovery=True, discovery_port=port, name="office")  # not clustered
    node = server_factory(name="alpha")

    def info() -> dict[str, Any]:  # what a node of cluster "staff" announces
        return {**type(node).info(node), "cluster": "staff", "node": "a1"}

    node.info = info  # type: ignore[method-assign]
    start_discovery(node, port)
    controller = gui(broadcast=LOOPBACK, discovery_port=port, server_name="staff",
                     nick="bob", insecure=True)
    controller.start()
    window = connected_window(qtbot, controller)
    assert window.session.port == node.port
