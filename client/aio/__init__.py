"""The asyncio client, on ``grpc.aio``, over the threaded client's pure cores.

    from logstore.client.aio import AsyncProducer

    async with AsyncProducer(bootstrap_servers="127.0.0.1:9093") as producer:
        metadata = await producer.send("orders", b'{"id": 7}', key=b"customer-42")

Names follow aiokafka. The producer's batching, sequence numbers and retries are the threaded client's
``Accumulator`` (``logstore.client.producer.accumulator``); only the I/O driver is new.
"""

from logstore.client.aio.producer import AsyncProducer

__all__ = ["AsyncProducer"]
