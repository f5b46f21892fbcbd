"""`python -m bot.api PATH`: write the API's OpenAPI document to PATH (`make openapi`: docs/openapi.json)."""

from __future__ import annotations

import sys
from pathlib import Path

from bot.api.deps import package_version
from bot.api.openapi import document_json


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bot.api PATH", file=sys.stderr)  # noqa: T201 - a command line tool
        return 2
    Path(argv[0]).write_text(document_json(package_version()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
