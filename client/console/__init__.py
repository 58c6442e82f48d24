"""Console tools in the manner of Kafka's: ``topics``, ``cluster``, ``produce``, ``consume``, ``dump-log``.

Each module adds its subcommand to ``logstore`` (see ``logstore.bench.cli``) and imports the client only when run.
"""

from logstore.client.console import cluster, consume, dump_log, produce, topics

COMMANDS = (
    topics.add_parser,
    cluster.add_parser,
    produce.add_parser,
    consume.add_parser,
    dump_log.add_parser,
)
"""The ``add_parser(subcommands)`` function of each tool, in the order ``logstore --help`` lists them."""
