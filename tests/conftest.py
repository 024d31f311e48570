# As the command line does: reuse freed memory rather than fault large buffers in afresh.
from replication.host_memory import keep_freed_memory

keep_freed_memory()
