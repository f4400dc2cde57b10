"""A plugin whose workflows module fails to import."""
