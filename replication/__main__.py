import sys

# XLA's faster-compiling CPU options (replication.xla), set before JAX's backend starts: measured,
# the experiments run as fast and compile faster with them. A flag named in XLA_FLAGS stays as given.
from replication.xla import prefer_fast_compile

prefer_fast_compile()

from replication.cli import main  # noqa: E402

sys.exit(main())
