"""The page in Chromium against the real bot and the emulators, at desktop width and at 360 px.

Players sign in through the Discord emulator's authorize page, set their status, opt in, choose how
they are pinged and link Telegram (a `/start` through the Telegram emulator) and Signal (a code
through the Signal emulator). A promoter previews, schedules a dry run, watches its jobs run and
cancels it, in three tabs at once (a phone, a desktop, a desktop that must poll); they schedule a
real campaign, ask for more players and see a player's answer arrive. Each step is checked in the
page and in what the bot really did (its API, the emulators). The tests share one world, so each
uses players of its own.
"""

from __future__ import annotations

import re

import pytest
import yarl
from playwright.sync_api import Locator, Page, Response, expect

from bot.sandbox.stack import PROMOTER_ID
from tests.web.conftest import DESKTOP, PHONE, WIDTHS, Visit, Visits, Width
from tests.web.world import PLAYERS, PROMOTER_NAME, World

# One worker runs them all (make test's --dist loadgroup): one world, one browser, one artifacts/web/.
pytestmark = pytest.mark.xdist_group("browser")

PREFS = "/api/availability/promotion-preferences"
CAMPAIGN = "/api/availability/promotions/campaign"
EVENTS = f"{CAMPAIGN}/events"
POLL_MS = 5_000  # the page's refresh when it cannot have server-sent events
# Per width, a player of its own: the tests share one world.
PLAYER = {"desktop": "Ana", "phone": "Bor"}
TELEGRAM_CHAT = {"desktop": 731_955_201, "phone": 731_955_202}
SIGNAL_NUMBER = {"desktop": "+38640917201", "phone": "+38640917202"}
JOB_WAIT_MS = 45_000  # the compressed evening sends the reminder 10 s after scheduling


def sign_in(visit: Visit, name: str) -> Page:
    """Open the page signed out, follow "Sign in with Discord" and pick `name` on the emulator's page."""
    page = visit.page
    page.goto(visit.world.url)
    expect(page.get_by_role("heading", name="Game night, organised")).to_be_visible()
    visit.snap("signed-out")
    page.get_by_role("link", name="Sign in with Discord").click()
    expect(page).to_have_title("Sign in with Discord (sandbox)")
    page.get_by_role("link", name=name, exact=True).click()
    expect(page.locator("#who")).to_contain_text(name)
    assert yarl.URL(page.url).path == "/"
    return page


def status_button(page: Page, name: str) -> Locator:
    return page.get_by_role("group", name="My status tonight").get_by_role("button", name=name, exact=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_player_signs_in_says_looking_opts_in_and_links_telegram_and_signal(
    visit: Visit, world: World, width: Width
) -> None:
    name = PLAYER[width.name]
    user_id = PLAYERS[name]
    page = sign_in(visit, name)

    # Consent is opt-in: a newcomer is asked, and nothing is on until they say yes.
    expect(page.get_by_role("heading", name="Ping me tonight?")).to_be_visible()
    assert world.api("GET", PREFS, user_id)["allow_promotions"] is False
    visit.snap("asked-to-opt-in")
    page.get_by_role("button", name="Ping me tonight").click()
    expect(page.get_by_role("heading", name="Ping me tonight?")).to_be_hidden()
    expect(page.get_by_label("Ping me when a game night is promoted")).to_be_checked()
    assert world.api("GET", PREFS, user_id)["allow_promotions"] is True

    status_button(page, "Looking").click()
    expect(status_button(page, "Looking")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#board-players")).to_contain_text(name)
    board = world.api("GET", "/api/availability", user_id)
    assert board["my_status"] == "LOOKING" and {"display_name": name, "status": "LOOKING"} in board["players"]
    visit.snap("looking")

    page.get_by_label("Where to ping me first").select_option("telegram")
    page.get_by_label("Never ping me between").check()
    page.get_by_label("From").fill("22:30")
    page.get_by_label("to", exact=True).fill("06:30")
    page.get_by_role("button", name="Use this device's").click()
    expect(page.get_by_label("My timezone (for quiet hours)")).to_have_value("America/New_York")
    page.get_by_role("button", name="Save my pings").click()
    expect(page.locator("#notice")).to_have_text("Saved.")
    prefs = world.api("GET", PREFS, user_id)
    assert prefs["preferred_channel"] == "telegram"
    assert prefs["quiet_hours"] == {"start": "22:30", "end": "06:30"}
    assert prefs["timezone"] == "America/New_York"

    # Telegram: the page shows a deep link; the player presses Start in Telegram (the emulator).
    page.get_by_role("button", name="Link Telegram").click()
    deep_link = page.get_by_role("link", name="this link in Telegram")
    expect(deep_link).to_be_visible()
    # The link expires at a time shown in the viewer's zone, the community's beside it (by offset: a
    # player's page does not know the community's zone by name).
    expect(page.locator("#telegram-expires")).to_have_text(
        re.compile(r"\d\d:\d\d your time \(\d\d:\d\d UTC[+-]\d\d:\d\d\)")
    )
    href = deep_link.get_attribute("href") or ""
    found = re.fullmatch(r"https://t\.me/rallypoint_sandbox_bot\?start=([A-Za-z0-9_-]+)", href)
    assert found, href
    visit.snap("telegram-link-shown")
    world.telegram_start(TELEGRAM_CHAT[width.name], found.group(1))
    expect(page.locator("#telegram-state")).to_have_text("Linked.")  # the page notices by itself
    expect(page.get_by_role("button", name="Unlink Telegram")).to_be_visible()
    assert world.api("GET", PREFS, user_id)["links"]["telegram"]["linked"] is True

    # Signal: a number, then the code that arrived on it.
    number = SIGNAL_NUMBER[width.name]
    page.get_by_label("My Signal number").fill(number)
    page.get_by_role("button", name="Send me a code").click()
    code_box = page.get_by_label("The 6-digit code Signal brought")
    expect(code_box).to_be_focused()
    texts = world.signal_texts(number)
    code = re.search(r"\b(\d{6})\b", texts[-1] if texts else "")
    assert code, texts
    code_box.fill(code.group(1))
    visit.snap("signal-code")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#signal-state")).to_contain_text("Linked: ")
    assert number not in page.locator("#signal").inner_text()  # masked, as the API answers it
    expect(page.get_by_label("My Signal number")).to_have_value("")
    visit.snap("linked")

    page.get_by_role("button", name="Unlink Telegram").click()
    expect(page.locator("#telegram-state")).to_have_text("Not linked.")
    links = world.api("GET", PREFS, user_id)["links"]
    assert links["telegram"]["linked"] is False and links["signal"]["linked"] is True

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in with Discord")).to_be_visible()
    page.reload()
    expect(page.get_by_role("link", name="Sign in with Discord")).to_be_visible()  # the session is over


def test_a_promoter_previews_schedules_a_dry_run_watches_it_run_and_cancels_it(
    visits: Visits, world: World
) -> None:
    """One evening in three tabs: on a phone the promoter previews and schedules a dry run; a desktop tab
    watches it live (server-sent events) and cancels it; a third tab, behind a proxy that refuses event
    streams, follows it by polling with ETags (its timers on Playwright's clock: no 5 s waits)."""
    world.player_says("Cene", "LOOKING")
    world.player_says("Dora", "AVAILABLE")
    world.player_says("Eva", "MAYBE")
    phone, desktop, polling = visits.open(PHONE), visits.open(DESKTOP), visits.open(DESKTOP, "polling")
    polling.allowed_failures.add(EVENTS)
    polling.context.route(f"**{EVENTS}*", lambda route: route.fulfill(status=503, body="no streams here"))
    polling.context.clock.install()
    watching = sign_in(desktop, PROMOTER_NAME)
    expect(watching.locator("#live-mode")).to_have_text("Live: updates as they happen.")
    expect(watching.locator("#no-campaign")).to_be_visible()
    with polling.page.expect_response(is_status_read):  # its first read, which has no tag yet
        asking = sign_in(polling, PROMOTER_NAME)
    expect(asking.locator("#live-mode")).to_have_text("Refreshing every 5 seconds.")
    unchanged = poll(asking)  # nothing changed: 304 to the tag the page holds
    assert unchanged.status == 304 and unchanged.request.headers.get("if-none-match")

    page = sign_in(phone, PROMOTER_NAME)
    expect(page.get_by_role("heading", name="Promote tonight")).to_be_visible()
    recipients = page.locator("#preview-recipients")
    expect(recipients).to_contain_text("Cene")
    expect(recipients).not_to_contain_text("Dora")
    page.get_by_label("players who are available").check()
    expect(recipients).to_contain_text("Dora")
    expect(recipients).not_to_contain_text("Eva")
    expect(page.locator("#preview-times")).to_contain_text("(Europe/Ljubljana)")
    phone.snap("preview")

    dms_before = len(world.discord_dms(PROMOTER_ID))
    page.get_by_label("Dry run: only I get the messages, on Discord").check()
    page.get_by_role("button", name="Schedule…").click()
    expect(page.locator("#confirm-text")).to_contain_text("Dry run: only you get")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#notice")).to_contain_text("(dry run)")
    campaign_id = _campaign_id(page)
    headlines = [tab.locator("#campaign-headline") for tab in (page, watching, asking)]
    reminders = [tab.locator('#campaign-jobs li[data-job="send_reminder_2045"]') for tab in (page, watching, asking)]
    expect(headlines[0]).to_contain_text(f"dry run {campaign_id} by {PROMOTER_NAME}")
    expect(reminders[0]).to_contain_text("pending")
    # Times in the viewer's zone (New York), the community's beside them.
    expect(reminders[0]).to_contain_text(re.compile(r"at \d\d:\d\d your time \(\d\d:\d\d Europe/Ljubljana\)"))
    phone.snap("scheduled")
    expect(headlines[1]).to_contain_text(f"dry run {campaign_id}")  # the desktop tab, by itself
    assert poll(asking).status == 200
    expect(headlines[2]).to_contain_text(f"dry run {campaign_id}")
    expect(headlines[2]).to_contain_text("scheduled")

    # The reminder goes out to the promoter alone, and the tabs show it without being reloaded.
    expect(reminders[1]).to_contain_text("sent", timeout=JOB_WAIT_MS)
    expect(watching.locator("#campaign-delivery")).to_contain_text("sent 1 ·")
    expect(headlines[1]).to_contain_text("running")
    expect(reminders[0]).to_contain_text("sent")
    assert len(world.discord_dms(PROMOTER_ID)) == dms_before + 1
    desktop.snap("reminder-sent")
    phone.snap("reminder-sent")
    poll(asking)
    expect(reminders[2]).to_contain_text("sent")

    watching.get_by_role("button", name="Cancel this campaign").click()
    expect(headlines[1]).to_contain_text("cancelled")
    expect(watching.locator('#campaign-jobs li[data-job="send_start_2100"]')).to_contain_text("cancelled")
    expect(watching.get_by_role("button", name="Cancel this campaign")).to_be_hidden()
    expect(headlines[0]).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Cancel this campaign")).to_be_hidden()
    campaign = world.api("GET", CAMPAIGN, PROMOTER_ID)["campaign"]
    assert (campaign["id"], campaign["status"]) == (campaign_id, "cancelled")
    desktop.snap("cancelled")
    poll(asking)
    expect(headlines[2]).to_contain_text("cancelled")
    polling.snap("cancelled")


def poll(page: Page) -> Response:
    """Let the polling tab's next refresh fall due now, and answer what the status read got."""
    with page.expect_response(is_status_read) as answered:
        page.clock.fast_forward(POLL_MS)
    return answered.value


def is_status_read(response: Response) -> bool:
    return yarl.URL(response.url).path == CAMPAIGN


def _campaign_id(page: Page) -> int:
    expect(page.locator("#notice")).to_contain_text(re.compile(r"Campaign \d+ is scheduled"))
    found = re.search(r"Campaign (\d+) is scheduled", page.locator("#notice").inner_text())
    assert found
    return int(found.group(1))


KEYBOARD_PLAYER = {"desktop": "Gaja", "phone": "Hugo"}
_FOCUSED = """() => {
    const e = document.activeElement;
    const style = getComputedStyle(e);
    return {
        tag: e.tagName,
        text: (e.innerText || e.getAttribute("aria-label") || "").trim(),
        outline: style.outlineStyle,
        width: parseFloat(style.outlineWidth),
    };
}"""


def tab_to(page: Page, text: str, limit: int = 60) -> None:
    """Press Tab until the control showing `text` has the focus; every stop on the way shows its focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUSED)
        assert focused["outline"] != "none" and focused["width"] >= 2, f"focus not visible on {focused}"
        if focused["text"] == text:
            return
    raise AssertionError(f"{text!r} was not reached in {limit} presses of Tab")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_works_by_keyboard_and_shows_where_the_focus_is(visit: Visit, world: World, width: Width) -> None:
    name = KEYBOARD_PLAYER[width.name]
    page = visit.page
    page.goto(visit.world.url)
    expect(page.get_by_role("link", name="Sign in with Discord")).to_be_visible()
    tab_to(page, "Skip to content")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"
    tab_to(page, "Sign in with Discord")
    page.keyboard.press("Enter")
    expect(page).to_have_title("Sign in with Discord (sandbox)")
    tab_to(page, name)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_contain_text(name)
    expect(page.get_by_role("heading", name="Ping me tonight?")).to_be_visible()  # the page has loaded

    tab_to(page, "Ping me tonight")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Ping me tonight?")).to_be_hidden()
    tab_to(page, "Available")
    page.keyboard.press("Space")
    expect(status_button(page, "Available")).to_have_attribute("aria-pressed", "true")
    visit.snap("keyboard")
    user_id = PLAYERS[name]
    assert world.api("GET", "/api/availability", user_id)["my_status"] == "AVAILABLE"
    assert world.api("GET", PREFS, user_id)["allow_promotions"] is True
    # On through every control of the preferences (time fields included) to the last of the page.
    tab_to(page, "Send me a code")


@pytest.mark.parametrize("width", [pytest.param(DESKTOP, id="desktop")])
def test_a_promoter_schedules_for_real_asks_for_more_players_and_sees_the_answers(
    visit: Visit, world: World, width: Width
) -> None:
    # A real campaign (the others are dry runs): it reaches Fran and whoever else earlier tests left
    # looking; asking for more reaches Ida and whoever they left available or maybe.
    world.player_says("Fran", "LOOKING")
    world.player_says("Ida", "AVAILABLE")
    page = sign_in(visit, PROMOTER_NAME)
    expect(page.locator("#preview-recipients")).to_contain_text("Fran")
    page.get_by_role("button", name="Schedule…").click()
    expect(page.locator("#confirm-text")).to_have_text(re.compile(r"Ping \d+ players? tonight \(Discord \d+ · "))
    page.get_by_role("button", name="Confirm").click()
    campaign_id = _campaign_id(page)
    expect(page.locator("#campaign-headline")).to_contain_text(f"campaign {campaign_id} by {PROMOTER_NAME}")
    answers = page.locator("#campaign-answers")
    expect(answers).to_have_text("in 0 · running late 0 · can't tonight 0")

    # Until the voice check of a real campaign, a promoter may ask the players outside it.
    page.get_by_label("We need more players: how many?").fill("2")
    page.get_by_role("button", name="Ask players outside the campaign").click()
    expect(page.locator("#notice")).to_have_text(re.compile(rf"Asked \d+ players? to join campaign {campaign_id}\."))
    asked = world.api("GET", CAMPAIGN, PROMOTER_ID)["campaign"]["need"]["asked"]
    assert asked >= 1
    expect(answers).to_contain_text(f"asked for more {asked}, joined 0")
    expect(page.locator('#campaign-jobs li[data-job="send_need"]')).to_contain_text(": sent", timeout=JOB_WAIT_MS)
    ask = world.discord_dms(PLAYERS["Ida"])[-1]
    assert "needs 2 more players" in ask, ask

    # Ida answers "I'm in" on the ask, in her Discord DM: the page shows it without being reloaded.
    world.press_dm_button(PLAYERS["Ida"], f"rp:rsvp:{campaign_id}:in")
    expect(answers).to_have_text(f"in 1 · running late 0 · can't tonight 0 · asked for more {asked}, joined 1")
    assert world.api("GET", CAMPAIGN, PROMOTER_ID)["campaign"]["need"] == {"asked": asked, "joined": 1}
    visit.snap("asked-for-more")

    # Cancelled, there is nobody left to ask for: the form goes with the cancel button.
    page.get_by_role("button", name="Cancel this campaign").click()
    expect(page.locator("#campaign-headline")).to_contain_text("cancelled")
    expect(page.locator("#need-form")).to_be_hidden()
