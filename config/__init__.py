"""Process configuration: one typed settings object, validated at start."""

from config.settings import ConfigurationError, Environment, Settings, get_settings

__all__ = ["ConfigurationError", "Environment", "Settings", "get_settings"]
