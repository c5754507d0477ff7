"""A three-node RabbitMQ cluster of throwaway nodes (never the shared broker on 5672).

Each node is a ``ThrowawayBroker`` (own name, ports, data directory); the
three share one Erlang cookie, and nodes 2 and 3 join node 1. Recipe and
timings: /work/shared/notes/broker-node.md ("A three-node cluster").
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from tests.faults.node import BIN, NodeError, ThrowawayBroker, reap_stale_nodes


@dataclass
class Cluster:
    nodes: tuple[ThrowawayBroker, ...]

    @property
    def amqp_url(self) -> str:
        """PIPELINE_AMQP_URL for all three nodes (node 1 first)."""
        return ",".join(node.url for node in self.nodes)

    def amqp_url_for(self, vhost: str) -> str:
        return ",".join(f"{node.url}{vhost}" for node in self.nodes)

    @property
    def management_url(self) -> str:
        return ",".join(node.management_url for node in self.nodes)

    def by_name(self, name: str) -> ThrowawayBroker:
        return next(node for node in self.nodes if node.node == name)

    def running(self) -> ThrowawayBroker:
        return next(node for node in self.nodes if node.pid is not None)

    def restart_stopped(self) -> None:
        """Start again every node an earlier test killed (on its own data directory)."""
        for node in self.nodes:
            if node.pid is None:
                node.restart()

    def api(self) -> httpx.Client:
        node = self.running()
        return httpx.Client(base_url=f"http://127.0.0.1:{node.http_port}/api",
                            auth=("guest", "guest"), timeout=10)


def quorum_status(node: ThrowawayBroker, queue: str, vhost: str) -> dict[str, dict]:
    """``rabbitmq-queues quorum_status``, asked on ``node``: member node name -> its Raft facts.

    Each member's ``Log Index`` / ``Commit Index`` say how far its copy of the
    queue's log goes: a member that caught up has the leader's.
    """
    result = subprocess.run(
        [str(BIN / "rabbitmq-queues"), "-q", "-n", node.node, "quorum_status", queue,
         "--vhost", vhost, "--formatter", "json"],
        env=node.env, capture_output=True, text=True, timeout=60, check=False,
    )
    if result.returncode != 0:
        raise NodeError(f"quorum_status {queue} exited {result.returncode}: "
                        f"{result.stderr.strip() or result.stdout.strip()}")
    return {row["Node Name"]: row for row in json.loads(result.stdout)}


def _share_cookie(nodes: tuple[ThrowawayBroker, ...]) -> None:
    cookie = secrets.token_hex(20)
    for node in nodes:
        path = node.base / "home" / ".erlang.cookie"
        path.chmod(0o600)
        path.write_text(cookie)
        path.chmod(0o400)


@contextlib.contextmanager
def three_node_cluster() -> Iterator[Cluster]:
    """Start three nodes, join 2 and 3 to 1; kill every node and remove its data at the end."""
    reap_stale_nodes()
    nodes = (ThrowawayBroker(), ThrowawayBroker(), ThrowawayBroker())
    _share_cookie(nodes)
    try:
        for node in nodes:
            node.start()
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", nodes[0].node)
            node.ctl("start_app")
        nodes[0].ctl("await_online_nodes", "3")
        yield Cluster(nodes)
    finally:
        for node in nodes:
            node.destroy()
