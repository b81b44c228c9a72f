"""cityhub telephony: SIP/RTP for the 12319 hotline and voice warnings (not built yet)."""
