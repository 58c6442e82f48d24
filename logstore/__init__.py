"""logstore: the storage engine. Topics, partitions, segment logs on disk; no network, no asyncio."""

__version__ = "0.1.0"
