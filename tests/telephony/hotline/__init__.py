"""Tests of the 12319 hotline."""
