"""Rendezvous: roles per data type (champion, shadow, canary, decoy), comparisons, promotion and control."""
