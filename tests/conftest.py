import os

# TensorFlow is imported by neural-tangents but unused; keep its start-up quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
