"""Helpers the test layers share; test modules import these, never each other."""
