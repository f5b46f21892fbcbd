"""/notify settings | show | link | verify | unlink."""

from __future__ import annotations

import dataclasses
import zoneinfo
from datetime import UTC, datetime, time

import pytest

from cogs.notify import NotifyCog
from services.errors import InvalidInput, TooManyRequests, Unavailable
from services.linking import LinkingService
from services.models import Actor, Channel, Preferences, PreferredChannel, QuietHours
from tests.cogs.fakes import Rig, interaction, make_rig, member, no_reply, only_reply, strict

ME = 3000
EXPIRES = datetime(2026, 11, 24, 17, 15, tzinfo=UTC)


@pytest.fixture
async def rig(tmp_path):
    rig = await make_rig(tmp_path / "rp.sqlite3")
    yield rig
    await rig.close()


async def prefs(rig: Rig) -> Preferences:
    player = await rig.h.engine.player_store.by_discord_id(ME)
    assert player is not None
    return await rig.h.engine.player_store.preferences(player.id)


async def settings(rig: Rig, **options):
    values = {"allow_promotions": None, "preferred_channel": None, "quiet_hours": None, "timezone": None}
    values.update(options)
    i = interaction(member(ME, "Mia"))
    await NotifyCog.settings.callback(NotifyCog(rig.bot, rig.engine), i, **values)
    return only_reply(i)


async def refused_settings(rig: Rig, **options) -> InvalidInput:
    values = {"allow_promotions": None, "preferred_channel": None, "quiet_hours": None, "timezone": None}
    values.update(options)
    i = interaction(member(ME, "Mia"))
    with pytest.raises(InvalidInput) as caught:
        await NotifyCog.settings.callback(NotifyCog(rig.bot, rig.engine), i, **values)
    no_reply(i)
    return caught.value


KNOWN = Preferences(
    allow_promotions=True,
    preferred_channel=PreferredChannel.SIGNAL,
    quiet_hours=QuietHours(time(22, 0), time(6, 0)),
    timezone="Europe/Berlin",
    promotions_chosen=True,
)


async def with_known_preferences(rig: Rig) -> None:
    await rig.h.add_player(ME, "Mia", status=None, prefs=KNOWN)


# -- settings ------------------------------------------------------------------------------------


async def test_settings_change_only_the_fields_given(rig: Rig) -> None:
    reply = await settings(rig, allow_promotions=False)
    assert reply.ephemeral and reply.content == "Saved."
    # A choice, even "no": Mia is not asked again.
    assert await prefs(rig) == Preferences(allow_promotions=False, promotions_chosen=True)

    await settings(rig, preferred_channel="telegram")
    assert await prefs(rig) == Preferences(
        allow_promotions=False, preferred_channel=PreferredChannel.TELEGRAM, promotions_chosen=True
    )

    await settings(rig, quiet_hours="23:00-07:00")
    assert (await prefs(rig)).quiet_hours == QuietHours(time(23, 0), time(7, 0))
    assert (await prefs(rig)).preferred_channel is PreferredChannel.TELEGRAM

    reply = await settings(rig, timezone="Europe/London")
    assert await prefs(rig) == Preferences(
        allow_promotions=False,
        preferred_channel=PreferredChannel.TELEGRAM,
        quiet_hours=QuietHours(time(23, 0), time(7, 0)),
        timezone="Europe/London",
        promotions_chosen=True,
    )
    assert reply.field("Promotions") == "off"
    assert reply.field("Preferred channel") == "telegram"
    assert reply.field("Quiet hours") == "23:00–07:00"
    assert reply.field("Timezone") == "Europe/London"


async def test_settings_with_nothing_given_changes_nothing(rig: Rig) -> None:
    await with_known_preferences(rig)
    reply = await settings(rig)
    assert reply.content == "Saved."
    assert await prefs(rig) == KNOWN


@pytest.mark.parametrize("off", ["off", "OFF", " none ", "clear"])
async def test_quiet_hours_off_removes_the_window(rig: Rig, off: str) -> None:
    await with_known_preferences(rig)
    reply = await settings(rig, quiet_hours=off)
    assert (await prefs(rig)).quiet_hours is None
    assert reply.field("Quiet hours") == "none"


@pytest.mark.parametrize("text", ["23:00-07:00", " 23:00 - 07:00 ", "23:00–07:00"])
async def test_quiet_hours_accept_spaces_and_an_en_dash(rig: Rig, text: str) -> None:
    await settings(rig, quiet_hours=text)
    assert (await prefs(rig)).quiet_hours == QuietHours(time(23, 0), time(7, 0))


@pytest.mark.parametrize(
    "garbage",
    [
        "25:00-07:00",
        "23:60-07:00",
        "abc",
        "23:00",
        "23:00-07:00-08:00",
        "7:00-8:00",
        "-",
        "２３:００-07:00",  # fullwidth digits
        "٢٣:٠٠-٠٧:٠٠",  # Arabic-Indic digits
        "23:00-07:00" * 500,
        "22:00-22:00",  # a window that silences nobody
        "00:00 – 00:00",
    ],
)
async def test_quiet_hours_garbage_is_refused_and_nothing_changes(rig: Rig, garbage: str) -> None:
    await with_known_preferences(rig)
    error = await refused_settings(rig, allow_promotions=False, quiet_hours=garbage)
    assert error.message.startswith("Quiet hours")
    assert await prefs(rig) == KNOWN  # allow_promotions=False was not saved either


@pytest.mark.parametrize(
    "bad",
    ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "Europe/\x00", "x" * 64],
)
async def test_a_bad_timezone_is_refused_and_nothing_changes(rig: Rig, bad: str) -> None:
    await with_known_preferences(rig)
    error = await refused_settings(rig, timezone=bad, preferred_channel="discord")
    assert error.message.startswith("unknown timezone")
    assert await prefs(rig) == KNOWN


async def test_timezone_autocomplete_offers_at_most_25_matching_iana_names(rig: Rig) -> None:
    cog = NotifyCog(rig.bot, rig.engine)
    i = interaction(member(ME, "Mia"))
    choices = await cog._timezone_autocomplete(i, "europe")
    assert 0 < len(choices) <= 25
    assert all("europe" in c.value.lower() and c.name == c.value for c in choices)
    assert all(c.value in zoneinfo.available_timezones() for c in choices)

    assert [c.value for c in await cog._timezone_autocomplete(i, "ljub")] == ["Europe/Ljubljana"]
    assert "America/New_York" in [c.value for c in await cog._timezone_autocomplete(i, "new york")]
    assert len(await cog._timezone_autocomplete(i, "")) == 25
    assert await cog._timezone_autocomplete(i, "x" * 500) == []
    no_reply(i)  # autocomplete answers through its return value, never a message


# -- show ----------------------------------------------------------------------------------------


async def test_show_renders_settings_and_linked_channels(rig: Rig) -> None:
    await rig.h.add_player(ME, "Mia", status=None, prefs=KNOWN, telegram="5001")
    i = interaction(member(ME, "Mia"))
    await NotifyCog.show.callback(NotifyCog(rig.bot, rig.engine), i)

    reply = only_reply(i)
    assert reply.ephemeral and reply.embed.title == "Your promotion settings"
    assert reply.field("Promotions") == "on"
    assert reply.field("Preferred channel") == "signal"
    assert reply.field("Quiet hours") == "22:00–06:00"
    assert reply.field("Timezone") == "Europe/Berlin"
    assert reply.field("Linked") == "discord: yes\ntelegram: yes\nsignal: no"
    assert "5001" not in "\n".join(reply.texts())  # handles are never shown


async def test_show_tells_a_player_whose_dms_were_closed_once(rig: Rig) -> None:
    await rig.h.add_player(ME, "Mia", status=None)
    await rig.h.engine.discord_dm_store.mark_closed(ME, rig.h.clock.now())

    first = interaction(member(ME, "Mia"))
    await NotifyCog.show.callback(NotifyCog(rig.bot, rig.engine), first)
    notice = only_reply(first).field("Discord DMs")
    assert "Discord refused our DM" in notice and f"<t:{int(rig.h.clock.now().timestamp())}:R>" in notice
    assert "try Discord again" in notice

    again = interaction(member(ME, "Mia"))
    await NotifyCog.show.callback(NotifyCog(rig.bot, rig.engine), again)
    assert "Discord DMs" not in [f.name for f in only_reply(again).embed.fields]


async def test_show_for_a_new_player_shows_the_defaults(rig: Rig) -> None:
    i = interaction(member(ME, "Mia"))
    await NotifyCog.show.callback(NotifyCog(rig.bot, rig.engine), i)
    reply = only_reply(i)
    assert reply.field("Quiet hours") == "none"
    assert reply.field("Timezone") == "the server's"
    assert reply.field("Preferred channel") == "any"
    # Consent is opt-in, and the reply says so plainly.
    assert reply.field("Promotions") == (
        "off: you never turned them on, so you get no pings (`/notify settings allow_promotions:True`)"
    )


# -- link / verify / unlink ----------------------------------------------------------------------

LINK_CALLS = [
    ("link_telegram", {}, "Telegram is not set up on this server."),
    ("link_signal", {"number": "+38640123456"}, "Signal is not set up on this server."),
    ("verify", {"code": "123456"}, "Signal is not set up on this server."),
]


@pytest.mark.parametrize(("command", "options", "refusal"), LINK_CALLS, ids=[c for c, _, _ in LINK_CALLS])
async def test_linking_commands_without_telegram_or_signal_are_unavailable(
    tmp_path, command, options, refusal
) -> None:
    rig = await make_rig(tmp_path / "discord-only.sqlite3", channels=frozenset({Channel.DISCORD}))
    try:
        i = interaction(member(ME, "Mia"))
        with pytest.raises(Unavailable) as refused:
            await getattr(NotifyCog, command).callback(NotifyCog(rig.bot, rig.engine), i, **options)
        assert refused.value.message == refusal
        no_reply(i)
    finally:
        await rig.close()


def linking(**effects) -> LinkingService:
    return strict(LinkingService, effects)


def cog_with(rig: Rig, fake: LinkingService) -> NotifyCog:
    """The cog over an engine whose linking service is `fake` (the rest is the real engine)."""
    return NotifyCog(rig.bot, dataclasses.replace(rig.engine, linking=fake))


MIA = Actor(ME, True, frozenset(), "Mia")


async def test_link_telegram_answers_the_deep_link_ephemerally(rig: Rig) -> None:
    link = "https://t.me/rallybot?start=TOKEN123"
    fake = linking(request_telegram_link=lambda actor: ("TOKEN123", link, EXPIRES))
    i = interaction(member(ME, "Mia"))
    await NotifyCog.link_telegram.callback(cog_with(rig, fake), i)

    reply = only_reply(i)
    assert reply.ephemeral  # the link is a credential: only the caller may see it
    assert reply.content == (
        f"Open {link} and press **Start** in Telegram. "
        f"The link works once and expires <t:{int(EXPIRES.timestamp())}:R>."
    )
    fake.request_telegram_link.assert_awaited_once_with(MIA)


async def test_link_signal_says_a_code_is_coming(rig: Rig) -> None:
    fake = linking(request_signal_link=lambda actor, number: EXPIRES)
    i = interaction(member(ME, "Mia"))
    await NotifyCog.link_signal.callback(cog_with(rig, fake), i, number="+38640123456")

    reply = only_reply(i)
    assert reply.ephemeral
    assert "/notify verify code:" in reply.content
    assert f"<t:{int(EXPIRES.timestamp())}:t>" in reply.content
    assert "+38640123456" not in reply.content
    fake.request_signal_link.assert_awaited_once_with(MIA, "+38640123456")


async def test_verify_strips_the_code_and_confirms(rig: Rig) -> None:
    fake = linking()
    i = interaction(member(ME, "Mia"))
    await NotifyCog.verify.callback(cog_with(rig, fake), i, code="  123456 ")

    reply = only_reply(i)
    assert reply.ephemeral and reply.content == "Signal linked. ✅"
    fake.confirm_signal_link.assert_awaited_once_with(MIA, "123456")


async def test_a_wrong_code_reaches_the_user_unchanged(rig: Rig) -> None:
    def wrong(actor, code):
        raise InvalidInput("Wrong code; 2 tries left.")

    fake = linking(confirm_signal_link=wrong)
    i = interaction(member(ME, "Mia"))
    with pytest.raises(InvalidInput, match=r"Wrong code; 2 tries left\."):
        await NotifyCog.verify.callback(cog_with(rig, fake), i, code="000000")
    no_reply(i)


async def test_a_throttled_link_request_is_refused(rig: Rig) -> None:
    def throttled(actor):
        raise TooManyRequests("Too many Telegram link requests; try again in 10 minutes.", 600.0)

    fake = linking(request_telegram_link=throttled)
    i = interaction(member(ME, "Mia"))
    with pytest.raises(TooManyRequests):
        await NotifyCog.link_telegram.callback(cog_with(rig, fake), i)
    no_reply(i)


@pytest.mark.parametrize(
    ("channel", "removed", "text"),
    [
        ("telegram", True, "Telegram unlinked."),
        ("signal", True, "Signal unlinked."),
        ("telegram", False, "You had no Telegram link."),
        ("signal", False, "You had no Signal link."),
    ],
)
async def test_unlink(rig: Rig, channel: str, removed: bool, text: str) -> None:
    fake = linking(unlink=lambda actor, ch: removed)
    i = interaction(member(ME, "Mia"))
    await NotifyCog.unlink.callback(cog_with(rig, fake), i, channel=channel)

    reply = only_reply(i)
    assert reply.ephemeral and reply.content == text
    fake.unlink.assert_awaited_once_with(MIA, Channel(channel))
