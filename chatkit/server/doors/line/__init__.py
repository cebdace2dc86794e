"""See chatkit/server/doors/line/door.py."""
