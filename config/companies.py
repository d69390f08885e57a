"""The company directory: which company owns a receiving number, and its vendor secrets and texts."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

__all__ = ["Company", "CompanyDirectory", "ConfigError", "TwilioAccount", "load_companies"]


class ConfigError(ValueError):
    """A configuration file is missing or invalid; the message names the file and the field."""


class TwilioAccount(BaseModel):
    """A Twilio account; more than one auth token is accepted while a token is rotated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_sid: str
    auth_tokens: tuple[SecretStr, ...] = Field(min_length=1)


class Company(BaseModel):
    """One sending company (a tenant)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    name: str
    program_name: str
    numbers: tuple[str, ...]
    help_contact: str = ""
    message_frequency: str = "Msg frequency varies"
    # Load-test companies have their side effects (replies sent to a vendor) suppressed.
    load_test: bool = False
    twilio: TwilioAccount | None = None


class CompanyDirectory:
    """Read-only lookups over the configured companies."""

    def __init__(self, companies: Iterable[Company]) -> None:
        self._by_id: dict[str, Company] = {}
        self._by_number: dict[str, Company] = {}
        for company in companies:
            if company.id in self._by_id:
                raise ConfigError(f"company id {company.id!r} is configured twice")
            self._by_id[company.id] = company
            for number in company.numbers:
                owner = self._by_number.get(number)
                if owner is not None:
                    raise ConfigError(f"number {number} belongs to both {owner.id!r} and {company.id!r}")
                self._by_number[number] = company

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_id.values())

    def get(self, company_id: str) -> Company | None:
        return self._by_id.get(company_id)

    def by_number(self, number: str) -> Company | None:
        """The company that owns a receiving number (E.164), if any."""
        return self._by_number.get(number)

    @property
    def by_id(self) -> Mapping[str, Company]:
        return self._by_id


def load_companies(path: Path) -> CompanyDirectory:
    """Read the companies file; a bad file raises ConfigError naming the file and the problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"companies file not found: {path} (set SMSFOLD_COMPANIES_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"companies file {path} is not valid TOML: {exc}") from None
    try:
        companies = [Company.model_validate(item) for item in raw.get("companies", [])]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"companies file {path}: {where}: {first['msg']}") from None
    return CompanyDirectory(companies)
