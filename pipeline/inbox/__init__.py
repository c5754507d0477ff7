"""The idempotent inbox: a handler's effects happen once per (consumer, event id).

    inbox.py   Inbox(sessions): the transaction a duplicate never gets past
    table.py   pipeline_inbox and create_inbox_table; metadata for migrations

Needs the ``outbox`` extra (SQLAlchemy 2 with asyncio). See docs/outbox-inbox.md.
"""

from pipeline.inbox.inbox import Inbox
from pipeline.inbox.table import create_inbox_table, inbox, metadata

__all__ = ["Inbox", "create_inbox_table", "inbox", "metadata"]
