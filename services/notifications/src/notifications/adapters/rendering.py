from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from notifications.adapters.channels import Message

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


def render(template: str, recipient: str, context: dict[str, Any], idempotency_key: str) -> Message:
    """Templates start with a `Subject:` line, then a blank line, then the body."""
    text = _environment.get_template(f"{template}.txt").render(**context)
    subject_line, _, body = text.partition("\n\n")
    return Message(recipient, subject_line.removeprefix("Subject:").strip(), body, idempotency_key)
