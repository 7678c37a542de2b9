"""Writes. Every change to Veil's data goes through a function in this package."""
