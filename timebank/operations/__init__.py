"""Business operations: plain functions that take models and data, do the work and flush.

They never commit: the request, CLI command or job that calls them commits once, or rolls back.
"""
