"""See chatkit/server/__init__.py."""
