"""Settings classes and default config files; no I/O at import."""

from config.companies import Company, CompanyDirectory, ConfigError, TwilioAccount, load_companies
from config.settings import Settings, load_settings

__all__ = [
    "Company",
    "CompanyDirectory",
    "ConfigError",
    "Settings",
    "TwilioAccount",
    "load_companies",
    "load_settings",
]
