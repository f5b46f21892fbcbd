"""Telegram fan-out against the loopback emulator.

Two figures, each against a baseline from the same run:

- pacing on: the rate achieved sending one message to each of N chats, (N - 1) / elapsed, as a
  ratio of Telegram's 30 msg/s limit (1.0 = the limit used to the full, never exceeded);
- pacing off: the time our `TelegramSender` (python-telegram-bot underneath) needs for N
  sendMessage calls at a given concurrency, divided by the time a bare aiohttp client needs to
  post the same requests at the same concurrency against the same emulator.

Run with `.venv/bin/python -m bench.telegram_fanout [--chats N] [--concurrency C]`.
"""

from __future__ import annotations

import os

os.environ.setdefault("PTB_TIMEDELTA", "1")

import argparse
import asyncio
import platform
from collections.abc import Awaitable, Callable

import aiohttp

from bench.gated import run_gated
from bot.sandbox.telegram_emulator import TelegramEmulator
from services.clock import SystemClock
from services.delivery.base import Outcome, OutgoingMessage
from services.delivery.telegram import Pacer, TelegramSender, build_telegram_bot
from services.models import Channel

TOKEN = "123456:bench"
TEXT = "Kick-off in 15 minutes: 21:00 CET. See you in voice!"
LIMIT = 30.0  # Telegram's overall limit, messages per second


def _via_sender(sender: TelegramSender, offset: int) -> Callable[[int], Awaitable[bool]]:
    async def one(i: int) -> bool:
        message = OutgoingMessage(Channel.TELEGRAM, str(offset + i), TEXT, nonce=f"bench-{i}")
        return (await sender.send(message)).outcome is Outcome.SENT

    return one


def _via_bare_aiohttp(session: aiohttp.ClientSession, url: str, offset: int) -> Callable[[int], Awaitable[bool]]:
    async def one(i: int) -> bool:
        # The same form-encoded request python-telegram-bot sends.
        async with session.post(url, data={"chat_id": str(offset + i), "text": TEXT}) as response:
            body = await response.json()
        return bool(body.get("ok"))

    return one


async def main(chats: int = 1000, concurrency: int = 30, repeats: int = 3) -> None:
    """Print the paced fan-out rate and the unpaced overhead ratio."""
    print(f"machine: {platform.machine()} {platform.system()} python {platform.python_version()}")
    async with TelegramEmulator(token=TOKEN) as emulator:
        bot = await build_telegram_bot(TOKEN, emulator.base_url)
        connector = aiohttp.TCPConnector(limit=concurrency)
        try:
            async with aiohttp.ClientSession(connector=connector) as session:
                url = f"{emulator.base_url}{TOKEN}/sendMessage"
                unpaced = TelegramSender(bot, pacer=None)
                # Warm both connection pools so neither side pays for connecting in the figures.
                await run_gated(concurrency, range(1, 2 * concurrency + 1), _via_sender(unpaced, 10_000_000))
                await run_gated(concurrency, range(1, 2 * concurrency + 1), _via_bare_aiohttp(session, url, 10_000_000))

                ours, bare = float("inf"), float("inf")
                for r in range(repeats):
                    offset = 20_000_000 + r * 100_000
                    ours = min(ours, await run_gated(concurrency, range(1, chats + 1), _via_sender(unpaced, offset)))
                    bare = min(
                        bare, await run_gated(concurrency, range(1, chats + 1), _via_bare_aiohttp(session, url, offset))
                    )
                print(
                    f"telegram fan-out, pacing off, {chats} sends at concurrency {concurrency}: "
                    f"sender {ours:.3f} s / bare aiohttp {bare:.3f} s = {ours / bare:.2f} x "
                    f"(best of {repeats})"
                )

            paced = TelegramSender(bot, Pacer(SystemClock(), LIMIT, 1.0))
            elapsed = await run_gated(concurrency, range(1, chats + 1), _via_sender(paced, 30_000_000))
            # N sends span N - 1 slot intervals; the last request's own latency adds to `elapsed`.
            rate = (chats - 1) / elapsed
            print(
                f"telegram fan-out, pacing on, {chats} chats: {elapsed:.2f} s, {rate:.2f} msg/s "
                f"= {rate / LIMIT:.3f} x the {LIMIT:.0f} msg/s limit"
            )
        finally:
            await bot.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    asyncio.run(main(**vars(parser.parse_args())))
