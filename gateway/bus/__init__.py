"""The message bus between instances: in-process for one process, Redis pub/sub for many."""
