"""Governance of models as data: who signed a model, and which models a job accepts."""
