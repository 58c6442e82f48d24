"""The asyncio client, on ``grpc.aio``, over the threaded client's pure cores.

    from logstore.client.aio import AsyncConsumer, AsyncProducer, AsyncShareConsumer

    async with AsyncProducer(bootstrap_servers="127.0.0.1:9093") as producer:
        metadata = await producer.send("orders", b'{"id": 7}', key=b"customer-42")

    async with AsyncConsumer("orders", group_id="billing", bootstrap_servers="127.0.0.1:9093") as consumer:
        async for record in consumer:
            handle(record)

    async with AsyncShareConsumer("jobs", group_id="workers", bootstrap_servers="127.0.0.1:9093") as worker:
        async for job in worker:
            handle(job)

Names follow aiokafka. The producer's batching, sequence numbers and retries are the threaded client's
``Accumulator`` (``logstore.client.producer.accumulator``); only the I/O driver is new. The consumer's
subscription state, fetch buffer and group steps are the threaded ``Consumer``'s too (see ``consumer``
and ``group``), and the share consumer's ledger and membership are the threaded ``ShareConsumer``'s
(see ``share``). Heartbeats, commits and acknowledgements are tasks and awaited calls on the loop.
"""

from logstore.client.aio.consumer import AsyncConsumer
from logstore.client.aio.producer import AsyncProducer
from logstore.client.aio.share import AsyncShareConsumer

__all__ = ["AsyncConsumer", "AsyncProducer", "AsyncShareConsumer"]
