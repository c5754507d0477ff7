"""Operating a running pipeline: what the broker says, and what the processes expose.

    management.py   the RabbitMQ management HTTP API client (one error mapping);
                    open_management: that client, or memory:// answers
    protocols.py    ManagementApi: what the ops side asks a management API
    status.py       is everything flowing? (``pipeline status``)
    drift.py        policies and arguments on the broker vs the declared topology
    access.py       least-privilege users per role (``pipeline users``)
    health.py       /healthz, /readyz and /metrics of a worker process
    metrics.py      the Prometheus metrics of a worker process
    queue_depth.py  queue depths as gauges, read on scrape

Importing this package imports nothing: each module needs the ``worker``
extra (httpx, prometheus-client).
"""
