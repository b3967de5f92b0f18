"""Entitlements: prepaid support hours per customer, what is spent, and what is left."""
