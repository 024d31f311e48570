import os

# TensorFlow is imported by neural-tangents but unused; keep its start-up quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# As the command line does: reuse freed memory rather than fault large buffers in afresh.
from replication.host_memory import keep_freed_memory  # noqa: E402

keep_freed_memory()
