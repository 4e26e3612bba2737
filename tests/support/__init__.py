"""Helpers that run real registries, container clients and test images for regcache tests."""
