import sys

from logstore.bench.perf.cli import main

sys.exit(main())
