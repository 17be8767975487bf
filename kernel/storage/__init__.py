"""The database: the engine and its helpers (:mod:`~kernel.storage.database`), the kernel's tables
(:mod:`~kernel.storage.models`) and schema migrations (:mod:`~kernel.storage.migrate`, revisions in ``migrations/``).

The lowest layer: it imports nothing else of the kernel.
"""
