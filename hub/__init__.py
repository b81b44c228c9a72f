"""cityhub hub: the ASGI app, settings, auth, the case workflow and service, the CLI."""

__version__ = "0.1.0"
