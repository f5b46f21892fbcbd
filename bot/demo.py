"""`python -m bot demo`: an offline rehearsal of a whole campaign against the built-in emulators.

Everything a user does goes through real interactions (slash commands, buttons, Telegram
/start, a Signal code), and the real bot talks to the emulators over loopback. Nobody schedules
the evening: the promoter adds a standing weekly session for the coming minute, and at that minute
the bot counts the players and creates the campaign by itself. The evening is compressed: the bot's
clock leaps to a few seconds before that minute instead of waiting for it, the session is decided at
its start, the reminder and the start ping fall due seconds after, the voice check 10 s later.

With `--serve` the world keeps running afterwards and the bot's page can be visited: signing in
goes through the Discord emulator's authorize page, where a visitor picks any member to be.
"""

from __future__ import annotations

import asyncio
import re
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bot.app import Running, started
from bot.sandbox.stack import (
    COMPRESSED_EVENING,
    FOLLOWUP_CHANNEL_ID,
    GUILD_ID,
    PROMOTER_ID,
    SERVICE_TOKEN,
    VOICE_CHANNEL_ID,
    Member,
    SandboxStack,
)
from cogs.availability import CONSENT_NO, CONSENT_YES
from services.clock import LeapingClock
from services.messages import RSVP_LABELS
from services.models import (
    Campaign,
    CampaignStatus,
    DeliveryStatus,
    JobStatus,
    JobType,
    RsvpAnswer,
    SendLogEntry,
    Weekday,
)
from services.rsvp import discord_custom_id, telegram_callback_data

T = TypeVar("T")
ZONE_NAME = "Europe/Ljubljana"
ZONE = ZoneInfo(ZONE_NAME)
BASE_ID = 810_000_000_000_000_000
TELEGRAM_CHAT_BASE = 700_000
VOICE_CHECK_DELAY_SECONDS = 10  # the sandbox's voice_check_delay_seconds
# The standing session: decided at its start (the demo's standing_decision_minutes), for the coming minute.
STANDING = {**COMPRESSED_EVENING, "standing_decision_minutes": 0}
STANDING_TITLE = "Raid night"
STANDING_QUORUM = 5
AHEAD_OF_THE_MINUTE = timedelta(seconds=5)  # time to add the session before its minute comes
DECISION_BOUND_SECONDS = 30
JOB_NAMES = {JobType.REMINDER: "reminder", JobType.START: "start ping", JobType.VOICE_CHECK: "follow-up"}
# How each message begins (services/messages.py), to tell them apart in the players' inboxes.
MESSAGE_MARKS = {"⏰": "reminder", "🎮": "start ping", "👋": "follow-up"}
# After the reminder, one player answers on each channel, from the message itself.
ANSWERS: list[tuple[str, RsvpAnswer]] = [("Ana", RsvpAnswer.IN), ("Bor", RsvpAnswer.LATE), ("Luka", RsvpAnswer.OUT)]
_DISCORD_STAMP = re.compile(r"<t:(-?\d+)(?::([tTdDfFR]))?>")

# (username, status, settings, link, in voice at the check, note). Consent is opt-in: the bot asks each
# player who sets a status it could promote; "consent" is what they answer ("yes" unless said).
PLAYERS: list[tuple[str, str, dict[str, Any], str | None, bool, str]] = [
    ("Ana", "LOOKING", {"preferred_channel": "telegram"}, "telegram", True, "prefers Telegram, in voice"),
    ("Bor", "LOOKING", {"preferred_channel": "signal"}, "signal", False, "prefers Signal"),
    ("Cene", "LOOKING", {}, None, True, "Discord DMs, in voice"),
    ("Dora", "AVAILABLE", {}, None, False, "AVAILABLE (included on request)"),
    ("Eva", "MAYBE", {}, None, False, "MAYBE (not included)"),
    ("Fran", "LOOKING", {"consent": "no"}, None, False, "said no to promotions"),
    ("Gaja", "LOOKING", {"quiet": True}, None, False, "in her quiet hours"),
    ("Hugo", "LOOKING", {}, None, False, "has Discord DMs closed"),
    ("Iva", "LOOKING", {"preferred_channel": "telegram"}, "telegram", False, "blocked the Telegram bot"),
    ("Jan", "LOOKING", {}, None, True, "in voice"),
    ("Kaja", "NOT_PLAYING", {}, None, False, "not playing tonight"),
    ("Luka", "LOOKING", {"preferred_channel": "discord"}, None, False, "prefers Discord"),
    ("Mia", "LOOKING", {"consent": None}, None, False, "never answered \"Ping me tonight\": left out"),
]


def _say(text: str = "") -> None:
    print(text, flush=True)


async def run_demo(*, serve: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="rallypoint-demo-") as tmp:
        return await _run(Path(tmp), serve=serve)


async def _run(workdir: Path, *, serve: bool) -> int:
    began = time.monotonic()
    # Times in the past shift to now + 10 s / now + 20 s (as the schedule rule has it): a compressed evening.
    stack = SandboxStack(workdir, promotion=STANDING, login=serve)
    clock = LeapingClock()
    members = [Member(PROMOTER_ID, "rally", nick="Rally (promoter)", promoter=True)]
    members += [Member(BASE_ID + i, name.lower(), nick=name) for i, (name, *_rest) in enumerate(PLAYERS)]
    await stack.start(members)
    try:
        _say("== Rallypoint demo: an evening against the built-in Discord, Telegram and Signal emulators")
        _say(
            "   (the evening is compressed: the bot's clock leaps to just before the standing session's minute, "
            "the session is decided at its start, the reminder goes out 10 s later, the start ping 10 s after "
            f"that, the voice check {VOICE_CHECK_DELAY_SECONDS} s after that)"
        )
        async with started(stack.settings(), clock) as app:
            await stack.discord.wait_for_commands(GUILD_ID, timeout=20)
            await stack.discord.wait_for_bot(timeout=20)
            await asyncio.wait_for(app.bot.wait_until_ready(), timeout=20)
            _say(f"bot connected, slash commands synced ({time.monotonic() - began:.1f}s)")
            await _players_set_up(stack)
            await _preview(stack, clock)
            await _standing_session(stack, app, clock)
            await _answer_the_reminder(stack, app)
            campaign = await _wait_for_evening(app)
            _received(stack, clock)
            await _outcomes(app, campaign)
            await _website_view(app)
            if serve:
                await _serve(stack)
    finally:
        await stack.stop()
    _say(f"\n== done in {time.monotonic() - began:.0f}s")
    return 0


async def _slash(stack: SandboxStack, user_id: int, command: str, **options: Any) -> dict[str, Any]:
    record = await stack.discord.invoke_slash(GUILD_ID, user_id, command, options)
    return await record.wait_message(timeout=10)


async def _players_set_up(stack: SandboxStack) -> None:
    _say('\n-- players set their status, answer "Ping me tonight", preferences and links, all by real interactions')
    local = datetime.now(ZONE)
    quiet = f"{(local - timedelta(hours=1)):%H:%M}-{(local + timedelta(hours=2)):%H:%M}"
    for i, (name, status, prefs, link, _voice, note) in enumerate(PLAYERS):
        uid = BASE_ID + i
        answer = await _slash(stack, uid, "available", status=status)
        await _answer_consent(stack, uid, answer, prefs.get("consent", "yes"))
        options = {k: v for k, v in prefs.items() if k not in ("quiet", "consent")}
        if prefs.get("quiet"):
            options["quiet_hours"] = quiet
        if options:
            await _slash(stack, uid, "notify settings", **options)
        if link == "telegram":
            await _link_telegram(stack, uid, chat_id=TELEGRAM_CHAT_BASE + i)
        elif link == "signal":
            await _link_signal(stack, uid, number=_signal_number(i))
        _say(f"   {name:<5} {status:<11} {note}")
    await _answer_consent(stack, PROMOTER_ID, await _slash(stack, PROMOTER_ID, "available", status="LOOKING"), "yes")
    # Faults: Hugo's DMs are closed (Discord 50007), Iva blocked the Telegram bot.
    stack.discord.dm_closed_user_ids = {BASE_ID + 7}
    stack.telegram.blocked_chat_ids = {TELEGRAM_CHAT_BASE + 8}
    for i, (*_head, in_voice, _note) in enumerate(PLAYERS):
        if in_voice:
            await stack.discord.set_voice_state(GUILD_ID, BASE_ID + i, VOICE_CHANNEL_ID)


async def _answer_consent(stack: SandboxStack, user_id: int, answer: dict[str, Any], choice: str | None) -> None:
    """Press "Ping me tonight" ("yes") or "No thanks" ("no") if the bot asked; None: leave it unanswered."""
    asked = [c["custom_id"] for row in answer.get("components") or [] for c in row.get("components") or []]
    if choice is None or CONSENT_YES not in asked:
        return
    click = await stack.discord.click_button(GUILD_ID, user_id, answer, CONSENT_YES if choice == "yes" else CONSENT_NO)
    await click.wait_response(timeout=10)


async def _link_telegram(stack: SandboxStack, user_id: int, chat_id: int) -> None:
    message = await _slash(stack, user_id, "notify link telegram")
    match = re.search(r"start=([A-Za-z0-9_-]+)", message.get("content") or "")
    if not match:
        raise RuntimeError(f"no Telegram deep link in {message.get('content')!r}")
    stack.telegram.queue_message(chat_id, f"/start {match.group(1)}")
    for _ in range(100):
        if any("Linked" in m.get("text", "") for m in stack.telegram.messages_to(chat_id)):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the Telegram link was not confirmed")


async def _link_signal(stack: SandboxStack, user_id: int, number: str) -> None:
    await _slash(stack, user_id, "notify link signal", number=number)
    texts = stack.signal.messages_to(number)
    code = re.search(r"\b(\d{6})\b", texts[-1] if texts else "")
    if not code:
        raise RuntimeError("no Signal code arrived")
    answer = await _slash(stack, user_id, "notify verify", code=code.group(1))
    if "linked" not in (answer.get("content") or "").lower():
        raise RuntimeError(f"Signal verification failed: {answer.get('content')!r}")


async def _preview(stack: SandboxStack, clock: LeapingClock) -> None:
    _say("\n-- the promoter runs /promote preview include_available:true")
    preview = await _slash(stack, PROMOTER_ID, "promote preview", include_available=True)
    _say_embeds(preview, clock.now())


async def _standing_session(stack: SandboxStack, app: Running, clock: LeapingClock) -> None:
    """Add a weekly session for the coming minute; at that minute the bot decides by itself."""
    minute = clock.leap_before_a_minute(AHEAD_OF_THE_MINUTE).astimezone(ZONE)
    weekday = Weekday.of(minute.date())
    options = {
        "weekday": weekday.value, "start": f"{minute:%H:%M}", "quorum": STANDING_QUORUM, "include_available": True,
        "title": STANDING_TITLE,
    }
    _say(
        "\n-- nobody schedules tonight: the promoter adds a standing weekly session instead\n"
        f"   /promote standing add {' '.join(f'{k}:{v}' for k, v in options.items())}"
    )
    _say_embeds(await _slash(stack, PROMOTER_ID, "promote standing add", **options), clock.now())
    _say(f"\n-- waiting for {minute:%H:%M}, when the session is decided (a few seconds away)")
    deadline = time.monotonic() + DECISION_BOUND_SECONDS
    while time.monotonic() < deadline:
        campaign = await app.engine.campaign_store.live_for_date(minute.date())
        if campaign is not None:
            break
        await asyncio.sleep(0.5)
    else:
        raise RuntimeError("the standing session did not decide in time")
    _say(f"   {minute:%H:%M}: enough players are up for it, so the bot created campaign {campaign.id} by itself")
    _say("   /promote standing list:")
    _say_embeds(await _slash(stack, PROMOTER_ID, "promote standing list"), clock.now())


def _say_embeds(message: dict[str, Any], now: datetime) -> None:
    for embed in message.get("embeds", []):
        for line in (embed.get("title"), embed.get("description")):
            if line:
                _say(render(f"   {line}", now).replace("\n", "\n   "))
        for f in embed.get("fields", []):
            _say(render(f"   {f['name']}: {f['value']}", now).replace("\n", "\n      "))


async def _answer_the_reminder(stack: SandboxStack, app: Running) -> None:
    """Once the reminder is out, Ana answers in Telegram, Bor on Signal and Luka in his Discord DM."""
    _say("\n-- the reminder goes out; three players answer from the message itself")
    deadline = time.monotonic() + 60
    while True:
        campaign = await app.engine.campaign_store.for_date(app.engine.players.today())
        jobs = {j.job_type: j for j in await app.engine.campaign_store.jobs(campaign.id)} if campaign else {}
        if campaign is not None and jobs[JobType.REMINDER].status is JobStatus.SENT:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the reminder did not go out in time")
        await asyncio.sleep(0.2)
    names = [name for name, *_ in PLAYERS]
    for name, answer in ANSWERS:
        i = names.index(name)
        link = PLAYERS[i][3]
        if link == "telegram":
            how, reply = await _answer_on_telegram(stack, TELEGRAM_CHAT_BASE + i, campaign.id, answer)
        elif link == "signal":
            how, reply = await _answer_on_signal(stack, _signal_number(i), answer)
        else:
            how, reply = await _answer_on_discord(stack, BASE_ID + i, campaign.id, answer)
        _say(f"   {name:<5} {how} → “{reply}”")


async def _answer_on_telegram(stack: SandboxStack, chat: int, campaign_id: int, answer: RsvpAnswer) -> tuple[str, str]:
    update = stack.telegram.press_button(chat, telegram_callback_data(campaign_id, answer))
    toast = await _poll(lambda: stack.telegram.callback_answer(update["callback_query"]["id"]), "the Telegram toast")
    return f'taps "{RSVP_LABELS[answer]}" under the Telegram reminder', str(toast["text"])


async def _answer_on_signal(stack: SandboxStack, number: str, answer: RsvpAnswer) -> tuple[str, str]:
    digit = {RsvpAnswer.IN: "1", RsvpAnswer.LATE: "2", RsvpAnswer.OUT: "3"}[answer]
    await stack.signal.wait_for_receiver()  # the bot listens for replies
    before = len(stack.signal.messages_to(number))
    stack.signal.queue_text(number, digit)
    reply = await _poll(lambda: stack.signal.messages_to(number)[before:], "the Signal confirmation")
    return f'replies "{digit}" on Signal', reply[-1]


async def _answer_on_discord(
    stack: SandboxStack, user_id: int, campaign_id: int, answer: RsvpAnswer
) -> tuple[str, str]:
    record = await stack.discord.press_dm_button(user_id, discord_custom_id(campaign_id, answer))
    await record.wait_for(lambda e: e.kind == "followup", 10, "the confirmation")
    return f'presses "{RSVP_LABELS[answer]}" in the Discord DM', record.ephemeral_texts()[-1]


async def _poll(read: Callable[[], T | None], what: str) -> T:
    """The first value `read()` gives that is not empty, looked for every 50 ms for 10 s."""
    for _ in range(200):
        value = read()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} did not come")


async def _wait_for_evening(app: Running) -> Campaign:
    _say("\n-- waiting for the start ping and the voice check (about 20 s)")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        campaign = await app.engine.campaign_store.for_date(app.engine.players.today())
        if campaign is not None and campaign.status in (
            CampaignStatus.FOLLOWUP_SENT,
            CampaignStatus.CANCELLED,
        ):
            return campaign
        await asyncio.sleep(0.5)
    raise RuntimeError("the campaign did not finish in time")


def _signal_number(index: int) -> str:
    return f"+3864011{index:04d}"


def render(text: str, now: datetime) -> str:
    """Text as Discord shows it: `<t:UNIX:STYLE>` stamps become times in the demo's zone."""
    def stamp(match: re.Match[str]) -> str:
        when = datetime.fromtimestamp(int(match.group(1)), ZONE)
        style = match.group(2) or "f"
        if style == "R":
            seconds = round((when - now).total_seconds())
            unit = _duration(abs(seconds))
            return f"in {unit}" if seconds >= 0 else f"{unit} ago"
        formats = {"t": "%H:%M", "T": "%H:%M:%S", "d": "%d.%m.%Y", "D": "%d %B %Y", "F": "%A, %d %B %Y %H:%M"}
        return when.strftime(formats.get(style, "%d %B %Y %H:%M"))

    return _DISCORD_STAMP.sub(stamp, text)


# Relative stamps in Discord's own steps: seconds, then minutes, hours, days.
_UNITS = ((90, 1, "second"), (90 * 60, 60, "minute"), (36 * 3600, 3600, "hour"), (None, 86400, "day"))


def _duration(seconds: int) -> str:
    for below, size, name in _UNITS:
        if below is None or seconds < below:
            amount = round(seconds / size)
            return f"{amount} {name}{'s' if amount != 1 else ''}"
    raise AssertionError("the last unit has no bound")


def _received(stack: SandboxStack, clock: LeapingClock) -> None:
    """Each campaign text the players received, once, as they saw it, with who got it where."""
    promoter = [m.get("content") or "" for m in stack.discord.dm_messages(PROMOTER_ID)]
    inboxes: list[tuple[str, str, Iterable[str]]] = [("Rally", "Discord", promoter)]
    for i, (name, _status, _prefs, link, *_rest) in enumerate(PLAYERS):
        inboxes.append((name, "Discord", [m.get("content") or "" for m in stack.discord.dm_messages(BASE_ID + i)]))
        if link == "telegram":
            chat = stack.telegram.messages_to(TELEGRAM_CHAT_BASE + i)
            inboxes.append((name, "Telegram", [m.get("text", "") for m in chat]))
        elif link == "signal":
            inboxes.append((name, "Signal", stack.signal.messages_to(_signal_number(i))))
    seen: dict[str, list[str]] = {}
    for name, channel, texts in inboxes:
        for text in texts:
            if any(mark in text for mark in MESSAGE_MARKS):
                seen.setdefault(render(text, clock.now()), []).append(f"{name} ({channel})")
    _say("\n-- what the players received, each text once (Discord shows the time stamp in the reader's own zone)")
    for text, readers in sorted(seen.items(), key=lambda item: _order(item[0])):
        kind = next(kind for mark, kind in MESSAGE_MARKS.items() if mark in text)
        _say(f"   {kind}: “{text}”".replace("\n", "\n      "))
        _say(f"      to {', '.join(readers)}")
    for post in stack.discord.channel_messages(FOLLOWUP_CHANNEL_ID):
        _say("   the summary in #game-night:")
        _say("      " + render(post.get("content") or "", clock.now()).replace("\n", "\n      "))


def _order(text: str) -> int:
    return next(i for i, mark in enumerate(MESSAGE_MARKS) if mark in text)


async def _outcomes(app: Running, campaign: Campaign) -> None:
    """One line per player and message: the final outcome, with what failed on the way."""
    _say(f"\n-- outcomes of campaign {campaign.id} (final status: {campaign.status.value})")
    log = await app.engine.ledger_store.send_log(campaign.id)
    names: dict[int, str] = {}
    for row in log:
        if row.player_id is not None and row.player_id not in names:
            player = await app.engine.player_store.get(row.player_id)
            names[row.player_id] = player.display_name if player else f"player {row.player_id}"
    for player_id, name in sorted(names.items(), key=lambda item: item[1]):
        rows = [r for r in log if r.player_id == player_id]
        for job_type, job_name in JOB_NAMES.items():
            line = _outcome_line([r for r in rows if r.job_type is job_type])
            if line:
                _say(f"   {name:<17} {job_name:<11} {line}")
    summary = [r for r in log if r.player_id is None and r.status is DeliveryStatus.SENT]
    _say(f"   {'#game-night':<17} {'summary':<11} " + ("posted" if summary else "not posted"))
    counts = await app.engine.campaign_store.delivery_counts(campaign.id)
    _say("   delivery counts: " + ", ".join(f"{status.value} {n}" for status, n in counts.items()))


def _outcome_line(rows: list[SendLogEntry]) -> str | None:
    final = next((r for r in rows if r.final), None)
    if final is None:
        return None  # no message of this kind for this player (in voice at the check)
    failed_before = [f"{r.channel.value}: {r.reason}" for r in rows if not r.final and r.channel is not final.channel]
    if final.status is DeliveryStatus.SENT:
        detour = f" (after {'; '.join(failed_before)})" if failed_before else ""
        return f"sent on {final.channel.value}{detour}"
    reason = final.reason.removeprefix("every channel failed: ")
    return f"{final.status.value}: {reason}"


async def _website_view(app: Running) -> None:
    """What the community website sees: the status endpoint of the embedded API (aggregates only)."""
    import aiohttp

    from bot.api import bound_port

    if app.api is None:
        return
    url = f"http://127.0.0.1:{bound_port(app.api)}/api/availability/promotions/campaign"
    headers = {"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Discord-User-Id": str(PROMOTER_ID)}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        body = await response.json()
    c = body["campaign"]
    _say(f"\n-- the website's view: GET /api/availability/promotions/campaign → {response.status}")
    standing = c["standing_session"]
    _say(
        f"   “{c['title']}”, from standing session {standing['id']} ({standing['weekday']} {standing['start_time']}), "
        f"started by {c['initiator']}"
    )
    _say(f"   status {c['status']}, {c['recipient_count']} recipients, delivery {c['delivery']}, answers {c['rsvp']}")
    for job in c["jobs"]:
        _say(f"   {job['job_type']}: {job['status']} (attempt {job['attempts']}/{job['max_attempts']})")


async def _serve(stack: SandboxStack) -> None:
    """Keep the world running for visitors of the page until SIGINT (Ctrl-C) or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    names = ", ".join(name for name, *_rest in PLAYERS)
    _say(f"\n== the world keeps running: open {stack.page_url}")
    _say("   Sign in with Discord opens the emulator's page: pick Rally (promoter) to promote, or a player")
    _say(f"   ({names}). The rehearsal used Rally's campaign of the day; dry runs are still possible.")
    _say("   Signal codes the bot sends appear below. Telegram deep links point at t.me, which is not emulated.")
    _say("   Ctrl-C stops it.")
    try:
        await _echo_signal_codes(stack, stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _echo_signal_codes(stack: SandboxStack, stop: asyncio.Event) -> None:
    """Print each text the emulated Signal delivers from now on: the phones of the visitors."""
    seen = {number: len(stack.signal.messages_to(number)) for number in stack.signal.recipients()}
    while not stop.is_set():
        for number in stack.signal.recipients():
            texts = stack.signal.messages_to(number)
            for text in texts[seen.get(number, 0):]:
                _say(f"   Signal to {number}: {text}")
            seen[number] = len(texts)
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except TimeoutError:
            continue
