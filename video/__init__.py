"""cityhub video: camera registry, ingest, relay, snapshots, patrol rounds (not built yet)."""
