"""regcache: a pull-through cache for Docker/OCI container registries."""

__version__ = "0.1.0"
