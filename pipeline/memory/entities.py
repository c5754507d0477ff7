"""Exchange and queue methods (declare, bind, unbind, purge, delete) answered on a vhost."""

from __future__ import annotations

from pamqp import commands as spec
from pamqp.base import Frame

from pipeline.memory.errors import COMMAND_INVALID, AmqpConnectionError, not_implemented
from pipeline.memory.vhost import VirtualHost


def handle(vhost: VirtualHost, owner: object, frame: Frame) -> Frame | None:
    """Apply one exchange or queue method; return the reply frame.

    Raises ``AmqpChannelError`` for what RabbitMQ refuses on a channel and
    ``AmqpConnectionError`` for methods memory:// does not implement.
    """
    match frame:
        case spec.Exchange.Declare():
            vhost.declare_exchange(frame)
            return spec.Exchange.DeclareOk()
        case spec.Exchange.Delete():
            vhost.delete_exchange(frame.exchange, bool(frame.if_unused))
            return spec.Exchange.DeleteOk()
        case spec.Queue.Declare():
            queue = vhost.declare_queue(owner, frame)
            return spec.Queue.DeclareOk(queue=queue.name, message_count=queue.message_count,
                                        consumer_count=len(queue.subscribers))
        case spec.Queue.Bind():
            vhost.bind(owner, frame)
            return spec.Queue.BindOk()
        case spec.Queue.Unbind():
            vhost.unbind(owner, frame)
            return spec.Queue.UnbindOk()
        case spec.Queue.Purge():
            return spec.Queue.PurgeOk(message_count=vhost.queue(owner, frame.queue).purge())
        case spec.Queue.Delete():
            return spec.Queue.DeleteOk(message_count=vhost.delete_queue(owner, frame))
        case spec.Exchange.Bind() | spec.Exchange.Unbind():
            raise not_implemented("exchange-to-exchange bindings are not implemented by memory://")
        case spec.Tx.Select() | spec.Tx.Commit() | spec.Tx.Rollback():
            raise not_implemented("transactions are not implemented by memory://")
        case spec.Basic.Recover() | spec.Basic.RecoverAsync():
            raise not_implemented("basic.recover is not implemented by memory://")
    raise AmqpConnectionError(COMMAND_INVALID, f"unexpected method {frame.name} on a channel")
