"""What a call cost: a built-in price table the user can extend or override.

Prices are USD per million input / output tokens. ``AGORA_LLM_PRICES`` names a JSON or TOML
file of the same shape as ``prices.json``; its models are added to (or replace) the built-in
ones. A model no entry matches costs 0, with one warning per model and process.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from events.errors import ConfigurationError
from infra.logging import get_logger

__all__ = ["Price", "PriceTable"]

log = get_logger("agora.llm.pricing")
PER = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    input: float
    output: float


def _prices(models: object, where: str) -> dict[str, Price]:
    if not isinstance(models, dict):
        raise ConfigurationError(f"{where}: expected a 'models' table of model -> prices")
    table: dict[str, Price] = {}
    for model, entry in models.items():
        try:
            table[str(model)] = Price(input=float(entry["input"]), output=float(entry["output"]))
        except (KeyError, TypeError, ValueError):
            raise ConfigurationError(
                f"{where}: model {model!r} needs numeric 'input' and 'output' (USD per 1M tokens)"
            ) from None
    return table


def _read(path: Path) -> Mapping[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"AGORA_LLM_PRICES={path} cannot be read: {exc.strerror}"
        ) from None
    try:
        decoded: Any = (
            tomllib.loads(raw.decode()) if path.suffix.lower() == ".toml" else json.loads(raw)
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"AGORA_LLM_PRICES={path} is not valid: {exc}") from None
    if not isinstance(decoded, dict):
        raise ConfigurationError(f"AGORA_LLM_PRICES={path}: expected a table with 'models'")
    return decoded


@dataclass
class PriceTable:
    models: dict[str, Price]
    _warned: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, user_file: Path | None = None) -> PriceTable:
        builtin = json.loads(resources.files("infra.llm").joinpath("prices.json").read_text())
        models = _prices(builtin["models"], "prices.json")
        if user_file is not None:
            models.update(_prices(_read(user_file).get("models"), f"AGORA_LLM_PRICES={user_file}"))
        return cls(models)

    def price_of(self, model: str) -> Price | None:
        """The entry for ``model``: exact, else the longest name ``model`` starts with."""
        if model in self.models:
            return self.models[model]
        matches = [name for name in self.models if model.startswith(name)]
        return self.models[max(matches, key=len)] if matches else None

    def cost(self, model: str, tokens_in: int, tokens_out: int) -> float:
        price = self.price_of(model)
        if price is None:
            if model not in self._warned:
                self._warned.add(model)
                log.warning("llm_price_unknown", model=model, hint="add it to AGORA_LLM_PRICES")
            return 0.0
        return (tokens_in * price.input + tokens_out * price.output) / PER
