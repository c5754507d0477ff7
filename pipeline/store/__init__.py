"""The dead-letter store: what it keeps, and list, show, replay and purge.

    entry.py      one stored message as an operator reads it (StoredMessage)
    selection.py  which stored messages an operation applies to (Selection)
    scan.py       reading the store without changing it; list and purge
    replay.py     back to the queue of the consumer that failed it
"""

from pipeline.store.entry import StoredMessage
from pipeline.store.replay import ReplayReport, replay
from pipeline.store.scan import MAX_SCAN, list_stored, purge, scan
from pipeline.store.selection import Selection, error_type_of, parse_age

__all__ = [
    "MAX_SCAN",
    "ReplayReport",
    "Selection",
    "StoredMessage",
    "error_type_of",
    "list_stored",
    "parse_age",
    "purge",
    "replay",
    "scan",
]
