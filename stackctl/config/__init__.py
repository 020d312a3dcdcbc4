"""Configuration: the one settings table, the .env file rendered from it, and the
Stack (where the project lives and the values its .env holds).

Every port, image key, secret key, service and volume name is declared in
settings.py; everything else in the project reads it from there."""
