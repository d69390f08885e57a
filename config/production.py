"""Production mode's refusals: with ``SMSFOLD_ENV=production`` the gateway and the worker do not start on
empty ClickHouse or Redis passwords, or on a secret that ships in this repository's companies file
(its Twilio tokens, Bandwidth passwords, Telnyx keys and API key hashes are public: dev only)."""

from __future__ import annotations

from urllib.parse import urlsplit

from config.companies import CompanyDirectory, load_companies
from config.settings import PROJECT_ROOT, Settings

__all__ = ["DEV_COMPANIES_FILE", "ProductionConfigError", "check_production", "production_problems"]

DEV_COMPANIES_FILE = PROJECT_ROOT / "config" / "companies.toml"


class ProductionConfigError(RuntimeError):
    """The settings are not fit for production; the message names the first problem."""


def _secrets(companies: CompanyDirectory) -> dict[str, str]:
    """Every secret of the directory → where it is configured."""
    found: dict[str, str] = {}
    for company in companies:
        where = f"company {company.id!r}"
        for digest in company.api_key_hashes:
            found[digest.lower()] = f"{where} API key"
        if company.twilio is not None:
            for token in company.twilio.auth_tokens:
                found[token.get_secret_value()] = f"{where} Twilio auth token"
        if company.telnyx is not None:
            for key in company.telnyx.public_keys:
                found[key] = f"{where} Telnyx public key"
        if company.bandwidth is not None:
            for cred in company.bandwidth.credentials:
                found[cred.password.get_secret_value()] = f"{where} Bandwidth password"
    return found


def production_problems(settings: Settings, companies: CompanyDirectory) -> list[str]:
    """What makes ``settings`` and ``companies`` unfit for production (empty in development mode)."""
    if settings.env != "production":
        return []
    problems = []
    if not settings.clickhouse.password.get_secret_value():
        problems.append("the ClickHouse password is empty (set SMSFOLD_CLICKHOUSE__PASSWORD)")
    if not urlsplit(settings.redis.url).password:
        problems.append("the Redis URL has no password (SMSFOLD_REDIS__URL=redis://:PASSWORD@host:port/0)")
    if settings.companies_file.resolve() == DEV_COMPANIES_FILE.resolve():
        problems.append(f"the companies file is the repository's development file {DEV_COMPANIES_FILE} "
                        "(set SMSFOLD_COMPANIES_FILE)")
    dev = _secrets(load_companies(DEV_COMPANIES_FILE)) if DEV_COMPANIES_FILE.exists() else {}
    for secret, where in _secrets(companies).items():
        if secret in dev:
            problems.append(f"{where} is a development secret from the repository's companies.toml")
    return problems


def check_production(settings: Settings, companies: CompanyDirectory) -> None:
    """Raise ProductionConfigError naming the first problem (and how many there are)."""
    problems = production_problems(settings, companies)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ProductionConfigError(f"refusing to start in production: {problems[0]}{more}")
