"""The company directory: which company owns a receiving number, and its vendor secrets and texts."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

__all__ = [
    "BandwidthAccount",
    "BasicCredential",
    "Company",
    "CompanyDirectory",
    "ConfigError",
    "CustomKeyword",
    "KeywordSettings",
    "SendingSettings",
    "TelnyxAccount",
    "TwilioAccount",
    "load_companies",
]


class ConfigError(ValueError):
    """A configuration file is missing or invalid; the message names the file and the field."""


class TwilioAccount(BaseModel):
    """A Twilio account; more than one auth token is accepted while a token is rotated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_sid: str
    auth_tokens: tuple[SecretStr, ...] = Field(min_length=1)


class TelnyxAccount(BaseModel):
    """A Telnyx account: the Ed25519 public keys webhooks are verified with (two during a rotation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    public_keys: tuple[str, ...] = Field(min_length=1, description="base64 Ed25519 public keys")
    # The REST API key messages are sent with (Bearer); None for a receive-only account.
    api_key: SecretStr | None = None


class BasicCredential(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    username: str
    password: SecretStr


class BandwidthAccount(BaseModel):
    """A Bandwidth messaging application: the HTTP Basic credentials its callbacks carry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    application_id: str
    credentials: tuple[BasicCredential, ...] = Field(min_length=1)


class CustomKeyword(BaseModel):
    """A company keyword (e.g. JOIN): its reply and an optional consent effect."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reply: str
    consent_effect: Literal["subscribe", "unsubscribe"] | None = None


class KeywordSettings(BaseModel):
    """Per-company keyword replies; ``{program}``, ``{help_contact}``, ``{frequency}`` are filled in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    custom: dict[str, CustomKeyword] = Field(default_factory=dict)
    stop_reply: str = (
        "{program}: You are unsubscribed and will receive no further messages. Reply START to resubscribe."
    )
    help_reply: str = (
        "{program}: Help at {help_contact}. {frequency}. Msg&data rates may apply. Reply STOP to opt out."
    )
    start_reply: str = (
        "{program}: You are subscribed. {frequency}. Msg&data rates may apply. "
        "Reply HELP for help, STOP to opt out."
    )
    # Double opt-in: a new subscriber is pending until they confirm with YES/Y.
    double_opt_in: bool = False
    confirm_reply: str = "{program}: Reply YES to confirm your subscription. Msg&data rates may apply."


class SendingSettings(BaseModel):
    """How the company's marketing messages are sent and billed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str = ""
    opt_out_language: str = "Reply STOP to opt out."
    link_domain: str = "https://sms.example/l"
    price_per_segment_micros: int = 7900
    frequency_cap_hours: int = 12
    # What a campaign does outside quiet hours: skip it, or hold it until the window opens.
    campaign_quiet_hours: Literal["skip", "hold"] = "hold"
    # Short links: random base62 codes of this length, kept for this many days.
    link_code_length: int = Field(default=8, ge=6, le=16)
    link_ttl_days: int = Field(default=90, ge=1, le=3650)


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
    telnyx: TelnyxAccount | None = None
    bandwidth: BandwidthAccount | None = None
    # SHA-256 hex digests of the company's API keys: keys are never stored in clear.
    api_key_hashes: tuple[str, ...] = ()
    keywords: KeywordSettings = Field(default_factory=KeywordSettings)
    sending: SendingSettings = Field(default_factory=SendingSettings)


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

    def __iter__(self) -> Iterator[Company]:
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
