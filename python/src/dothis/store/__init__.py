"""The store layer: connections, the protocol's scripts, and the operations layer (``ops``), the
only code that names a script, builds its KEYS and ARGV, or reads its reply."""
