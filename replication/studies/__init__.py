"""Studies that two experiments share, each one module of the shape described in
``replication.experiments``: ``Config``, ``measure(config, streams)``, ``findings(config, result)``.
A shared study owns its claim ids."""
