from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from notifications.adapters.channels import Message

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

# ISO 4217 minor units where they are not 2; amounts travel as integers of minor units.
_MINOR_UNITS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"), 0),
    **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def money(amount: int, currency: str) -> str:
    """`1299, "EUR"` -> `12.99 EUR`; integer arithmetic, so no amount is ever rounded."""
    digits = _MINOR_UNITS.get(currency.upper(), 2)
    sign = "-" if amount < 0 else ""
    units, minor = divmod(abs(amount), 10**digits)
    fraction = f".{minor:0{digits}d}" if digits else ""
    return f"{sign}{units}{fraction} {currency}"


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
_environment.filters["money"] = money


def render(template: str, recipient: str, context: dict[str, Any], idempotency_key: str) -> Message:
    """Templates start with a `Subject:` line, then a blank line, then the body."""
    text = _environment.get_template(f"{template}.txt").render(**context)
    subject_line, _, body = text.partition("\n\n")
    return Message(recipient, subject_line.removeprefix("Subject:").strip(), body, idempotency_key)
