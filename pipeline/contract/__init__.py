"""The contract of an App's events, for other teams and tools.

    schema.py     JSON Schemas: one event type's, the CloudEvents envelope's, our headers'
    asyncapi.py   an AsyncAPI 3.0 document generated from an App and its topology

``pipeline events schema TYPE`` and ``pipeline asyncapi`` print them.
"""

from pipeline.contract.asyncapi import asyncapi_document
from pipeline.contract.schema import envelope_schema, event_schema

__all__ = ["asyncapi_document", "envelope_schema", "event_schema"]
