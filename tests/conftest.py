from __future__ import annotations

import os

# python-telegram-bot gives retry_after as a timedelta without a deprecation warning only with this.
os.environ.setdefault("PTB_TIMEDELTA", "1")
