"""Day-2 operations on the stack's data: backup archives, restore, upgrade, and
which Open WebUI version an image or a volume holds."""
