"""Replica facts from the management API's queue listing: leader, members, online, problems.

The listings are shaped as RabbitMQ 3.10 returns them for quorum queues
(``leader``, ``members``, ``online``); tests/integration/test_replica_status.py
reads a real one.
"""

from __future__ import annotations

from pipeline import App, Consumer
from pipeline.ops.replicas import read_cluster
from pipeline.ops.status import build_report
from topology import RetryLadder, naming

NODES = ["rabbit@a", "rabbit@b", "rabbit@c"]


def _topology(replicas: int = 3):
    app = App([Consumer("billing", ["orders.#"])])
    return app.topology(RetryLadder.parse("1s"), 20, ledger=False, replicas=replicas)


def _listing(topology, online=NODES, members=NODES, leader="rabbit@a"):
    return {q.name: {"name": q.name, "leader": leader, "members": list(members),
                     "online": list(online), "messages_ready": 0}
            for q in topology.queues}


def test_a_healthy_three_node_cluster_shows_leaders_and_no_problem():
    topology = _topology()
    nodes = [{"name": n, "running": True} for n in NODES]
    cluster = read_cluster(topology, _listing(topology), nodes)
    assert {q.leader for q in cluster.queues} == {"rabbit@a"}
    assert all(q.online == tuple(NODES) for q in cluster.queues)
    assert cluster.problems() == []


def test_a_node_down_is_flagged_with_every_queue_missing_a_member():
    topology = _topology()
    nodes = [{"name": n, "running": n != "rabbit@c"} for n in NODES]
    report = build_report("/", topology, _listing(topology, online=NODES[:2]), nodes=nodes)
    codes = {(p.code, p.queue) for p in report.problems}
    assert ("node-down", "rabbit@c") in codes
    assert ("replicas-offline", naming.consumer_queue("billing")) in codes
    assert not any(code == "majority-lost" for code, _ in codes)


def test_two_of_three_members_offline_is_a_lost_majority():
    topology = _topology()
    listing = _listing(topology, online=NODES[:1])
    cluster = read_cluster(topology, listing, None)  # a user who may not read /api/nodes
    assert cluster.nodes_down == ("rabbit@b", "rabbit@c")
    problems = {(code, where) for code, where, _ in cluster.problems()}
    assert ("majority-lost", naming.DEAD_LETTER_STORE) in problems


def test_a_queue_with_fewer_members_than_declared_is_reported_but_capped_by_the_cluster():
    topology = _topology(replicas=3)
    short = _listing(topology, online=NODES[:2], members=NODES[:2])
    nodes = [{"name": n, "running": True} for n in NODES]
    problems = {code for code, _, _ in read_cluster(topology, short, nodes).problems()}
    assert problems == {"replicas-missing"}
    # On a single node, 3 declared means 1: nothing is missing there.
    single = _listing(topology, online=NODES[:1], members=NODES[:1])
    alone = read_cluster(topology, single, [{"name": "rabbit@a", "running": True}])
    assert alone.problems() == []
