"""The 12319 hotline: calls queued, answered by agents, recorded and turned into cases (docs/hotline.md)."""
