# XLA's faster-compiling CPU options (replication.xla): a test's programs mostly run once, so
# compiling is most of their time. Set before JAX starts; inherited by the processes tests start.
from replication.xla import prefer_fast_compile

prefer_fast_compile()

# As the command line does: reuse freed memory rather than fault large buffers in afresh.
from replication.host_memory import keep_freed_memory  # noqa: E402

keep_freed_memory()
