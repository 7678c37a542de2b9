"""Reads. Access-checked ways to fetch what a user may see, written once."""
