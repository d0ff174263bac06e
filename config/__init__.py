"""Fleet configuration (environment variables prefixed ``FDBBR_``); see :mod:`config.settings`."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
