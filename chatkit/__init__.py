"""chatkit: chat on a local network from the terminal, with zero set-up."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chatkit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
