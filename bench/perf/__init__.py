"""The perf tools: ``logstore perf produce | consume | e2e | sweep`` (also ``python -m logstore.bench.perf ...``).

They drive the public client (``client.Producer``, ``client.Consumer``, ``client.Admin``, ``logstore.client.tail``)
as an application would, print Kafka-style status and summary lines, and print beside every result its
ceilings measured in the same run (``logstore.bench.perf.ceilings``). ``--json`` prints one JSON object instead,
which is what ``perf sweep`` collects. Modules import the client only when a tool runs, so registering the
subcommands costs nothing.
"""
