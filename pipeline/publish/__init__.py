"""The publish side: typed events out, confirmed by the broker, or an error.

    publisher.py  Publisher: CloudEvents to pipeline.events, confirms and mandatory
    blocking.py   BlockingPublisher: the same for sync code (Flask, Django, scripts)
    outbound.py   send_confirmed, the one confirmed publish every sender uses, and
                  forward, the one hop (retry, dead-letter, park, replay) that
                  stores a confirmed copy before it acks the original
    protocols.py  Outgoing: what send_confirmed sends
"""

from pipeline.publish.blocking import BlockingPublisher
from pipeline.publish.publisher import Publisher

__all__ = ["BlockingPublisher", "Publisher"]
