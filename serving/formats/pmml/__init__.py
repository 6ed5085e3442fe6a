"""pmml."""
