// Rallypoint's page: plain JavaScript over the documented JSON API, with the session cookie.
// Every request that changes something sends X-Requested-With (the API's CSRF rule); nothing is
// loaded from anywhere but this server, and no script or style is inline (the page's CSP).
"use strict";

const AV = "/api/availability";
const PROMOTIONS = `${AV}/promotions`;
const CAMPAIGN = `${PROMOTIONS}/campaign`;
const STANDING = `${PROMOTIONS}/standing`;
const POLL_MS = 5000; // the fallback when server-sent events cannot be had
const LINK_POLL_MS = 3000; // while a Telegram link waits for its /start
const SSE_FAILURES_BEFORE_POLLING = 3;
const STATUS_NAMES = {LOOKING: "Looking", AVAILABLE: "Available", MAYBE: "Maybe", NOT_PLAYING: "Not playing"};
const CHANNEL_NAMES = {discord: "Discord", telegram: "Telegram", signal: "Signal"};
const WEEKDAYS = {
  mon: "Monday", tue: "Tuesday", wed: "Wednesday", thu: "Thursday", fri: "Friday", sat: "Saturday", sun: "Sunday",
};
// What a standing session's last decision did, in words (the API's `detail` adds the figures).
const OUTCOMES = {
  created: "promoted",
  below_quorum: "not enough players",
  refused: "refused",
  taken: "a campaign made by hand took the day",
  too_late: "the bot was not running in time",
  failed: "failed",
};
const JOB_NAMES = {
  send_reminder_2045: "Reminder",
  send_start_2100: "Start ping",
  voice_check_2100: "Voice check and follow-ups",
  send_need: "We need more players",
};
const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

const state = {
  access: null,
  prefs: null,
  promotionZone: null, // the IANA name, once the preview has told it
  campaign: null,
  events: null,
  pollTimer: null,
  etag: null,
  linkTimer: null,
  pendingConfirm: null,
};

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = {Accept: "application/json"};
  const init = {method, headers, credentials: "same-origin", cache: "no-store"};
  if (method !== "GET") headers["X-Requested-With"] = "XMLHttpRequest";
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http", error.message || `The server answered ${response.status}.`);
  }
  return data;
}

// -- small helpers -------------------------------------------------------------------------

function show(id, visible) {
  $(id).hidden = !visible;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function say(message, isError = false) {
  const notice = $("notice");
  notice.textContent = message;
  notice.classList.toggle("error", isError);
  notice.setAttribute("role", isError ? "alert" : "status");
  notice.hidden = false;
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    signedOut();
    say("Please sign in again.", true);
    return;
  }
  say(error instanceof ApiError ? error.message : "The server could not be reached; try again.", true);
}

// Run `action` with `button` disabled meanwhile; errors are shown, not thrown.
async function busy(button, action) {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (error) {
    failed(error);
  } finally {
    if (button) button.disabled = false;
  }
}

function hhmm(date, timeZone) {
  return new Intl.DateTimeFormat("en-GB", {hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone})
    .format(date);
}

// A time from the API as the viewer sees it, with the promotion's own time beside it. The API writes
// times with the promotion timezone's offset; its name is known once the preview has said it.
function timeText(iso) {
  const date = new Date(iso);
  const mine = hhmm(date, viewerZone);
  const offset = (iso.match(/([+-]\d\d:\d\d|Z)$/) || ["", ""])[1];
  const theirs = state.promotionZone
    ? `${hhmm(date, state.promotionZone)} ${state.promotionZone}`
    : `${iso.slice(11, 16)} UTC${offset === "Z" ? "" : offset}`;
  return `${mine} your time (${theirs})`;
}

function timeElement(iso) {
  const node = element("time", timeText(iso));
  node.dateTime = iso;
  return node;
}

// -- signing in and out --------------------------------------------------------------------

function signedOut() {
  stopWatching();
  stopLinkPolling();
  state.access = null;
  show("loading", false);
  show("signed-in", false);
  show("not-member", false);
  show("who", false);
  show("sign-out", false);
  const loginOn = document.body.dataset.login === "on";
  show("signed-out", true);
  show("sign-in", loginOn);
  show("sign-in-off", !loginOn);
}

async function start() {
  let access;
  try {
    access = await api("GET", `${AV}/access`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signedOut();
      return;
    }
    show("loading", false);
    failed(error);
    return;
  }
  state.access = access;
  show("loading", false);
  show("signed-out", false);
  show("sign-out", true);
  const who = $("who");
  who.textContent = access.linked
    ? `${access.display_name}${access.can_promote ? " · promoter" : ""}`
    : "Signed in";
  who.hidden = false;
  if (!access.linked) {
    show("not-member", true);
    return;
  }
  show("signed-in", true);
  show("promote", access.can_promote);
  show("standing", access.can_promote);
  await Promise.all([
    loadBoard(),
    loadPreferences(),
    access.can_promote ? loadPreview().then(loadStanding) : null, // the list names the zone the preview says
  ]);
  watchCampaign();
}

async function signOut() {
  await api("POST", "/auth/logout");
  signedOut();
  say("Signed out.");
}

// -- tonight's board and my status ---------------------------------------------------------

async function loadBoard() {
  const board = await api("GET", AV);
  $("board-date").textContent = `${board.date} (the community's day)`;
  const counts = $("board-counts");
  counts.replaceChildren(
    ...Object.entries(STATUS_NAMES).map(([status, name]) => element("li", `${name}: ${board.counts[status]}`)),
  );
  const players = $("board-players");
  players.replaceChildren();
  for (const [status, name] of Object.entries(STATUS_NAMES)) {
    const names = (board.players || []).filter((p) => p.status === status).map((p) => p.display_name);
    if (!names.length) continue;
    const line = element("p");
    line.append(element("strong", `${name}: `), document.createTextNode(names.join(", ")));
    players.append(line);
  }
  if (!players.childElementCount) players.append(element("p", "Nobody has said anything yet tonight.", "muted"));
  for (const button of document.querySelectorAll("button.status[aria-pressed]")) {
    button.setAttribute("aria-pressed", String(button.dataset.status === board.my_status));
  }
}

async function setStatus(button) {
  const status = button.dataset.status || null;
  await busy(button, async () => {
    await api("POST", AV, {status});
    await loadBoard();
    say(status ? `Your status tonight: ${STATUS_NAMES[status]}.` : "Your status is cleared.");
    if (state.access.can_promote) await loadPreview();
  });
}

// -- preferences ---------------------------------------------------------------------------

function renderPreferences(prefs) {
  state.prefs = prefs;
  $("allow-promotions").checked = prefs.allow_promotions;
  $("preferred-channel").value = prefs.preferred_channel;
  $("quiet-on").checked = prefs.quiet_hours !== null;
  if (prefs.quiet_hours) {
    $("quiet-start").value = prefs.quiet_hours.start;
    $("quiet-end").value = prefs.quiet_hours.end;
  }
  $("timezone").value = prefs.timezone || "";
  show("consent", !prefs.promotions_chosen);
  renderLinks(prefs.links);
}

async function loadPreferences() {
  renderPreferences(await api("GET", `${AV}/promotion-preferences`));
}

async function savePreferences(event) {
  event.preventDefault();
  const quietOn = $("quiet-on").checked;
  const body = {
    allow_promotions: $("allow-promotions").checked,
    preferred_channel: $("preferred-channel").value,
    quiet_hours: quietOn ? {start: $("quiet-start").value, end: $("quiet-end").value} : null,
    timezone: $("timezone").value.trim() || null,
  };
  await busy($("prefs-save"), async () => {
    renderPreferences(await api("POST", `${AV}/promotion-preferences`, body));
    say("Saved.");
  });
}

async function answerConsent(button, yes) {
  await busy(button, async () => {
    renderPreferences(await api("POST", `${AV}/promotion-preferences`, {allow_promotions: yes}));
    say(yes ? "Promotions are on: you will be pinged when a game night starts." : "No pings. You can turn them on below.");
    if (state.access.can_promote) await loadPreview();
  });
}

function fillTimezones() {
  const list = $("timezones");
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  list.replaceChildren(...zones.map((zone) => {
    const option = element("option");
    option.value = zone;
    return option;
  }));
}

// -- linking Telegram and Signal -----------------------------------------------------------

function renderLinks(links) {
  const telegram = links.telegram.linked;
  $("telegram-state").textContent = telegram ? "Linked." : "Not linked.";
  show("telegram-link", !telegram);
  show("telegram-unlink", telegram);
  if (telegram) {
    stopLinkPolling();
    show("telegram-pending", false);
  }
  const signal = links.signal.linked;
  $("signal-state").textContent = signal ? `Linked: ${links.signal.number_masked}.` : "Not linked.";
  show("signal-number-form", !signal);
  show("signal-unlink", signal);
  if (signal) show("signal-code-form", false);
}

async function linkTelegram(button) {
  await busy(button, async () => {
    const link = await api("POST", `${AV}/link-token`, {channel: "telegram"});
    $("telegram-deep-link").href = link.deep_link;
    const expires = $("telegram-expires");
    expires.replaceChildren(timeElement(link.expires_at));
    show("telegram-pending", true);
    startLinkPolling(new Date(link.expires_at));
    $("telegram-deep-link").focus();
  });
}

// Telegram tells the bot, not this page: look at the preferences until the link shows (or expires).
function startLinkPolling(until) {
  stopLinkPolling();
  state.linkTimer = setInterval(async () => {
    if (Date.now() > until.getTime()) {
      stopLinkPolling();
      show("telegram-pending", false);
      say("The Telegram link expired; ask for a new one.", true);
      return;
    }
    if (document.hidden) return;
    try {
      const prefs = await api("GET", `${AV}/promotion-preferences`);
      if (prefs.links.telegram.linked) {
        renderPreferences(prefs);
        say("Telegram is linked.");
      }
    } catch (error) {
      stopLinkPolling();
      failed(error);
    }
  }, LINK_POLL_MS);
}

function stopLinkPolling() {
  if (state.linkTimer !== null) clearInterval(state.linkTimer);
  state.linkTimer = null;
}

async function requestSignalCode(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await busy(form.querySelector("button"), async () => {
    const answer = await api("POST", `${AV}/link-token`, {channel: "signal", address: $("signal-number").value});
    show("signal-code-form", true);
    const expires = new Date(answer.expires_at);
    say(`A code is on its way to your Signal; it works until ${hhmm(expires, viewerZone)}.`);
    $("signal-code").focus();
  });
}

async function confirmSignalCode(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await busy(form.querySelector("button"), async () => {
    await api("POST", `${AV}/link-confirm`, {channel: "signal", code: $("signal-code").value});
    $("signal-code").value = "";
    $("signal-number").value = "";
    await loadPreferences();
    say("Signal is linked.");
  });
}

async function unlink(button, channel) {
  await busy(button, async () => {
    renderPreferences(await api("POST", `${AV}/unlink`, {channel}));
    say(`${CHANNEL_NAMES[channel]} is unlinked.`);
  });
}

// -- promoting -----------------------------------------------------------------------------

function includes() {
  return {include_available: $("include-available").checked, include_maybe: $("include-maybe").checked};
}

// The start and title typed in the form, as the API takes them (left out when not given).
function evening() {
  const chosen = {};
  if ($("start-time").value) chosen.start_time = $("start-time").value;
  const title = $("title").value;
  if (title.trim()) chosen.title = title;
  return chosen;
}

function quoted(title) {
  return title ? `“${title}”` : "";
}

function channelCounts(summary) {
  return Object.entries(CHANNEL_NAMES).map(([key, name]) => `${name} ${summary[key]}`).join(" · ");
}

async function loadPreview() {
  const wanted = includes();
  const query = new URLSearchParams({
    include_available: String(wanted.include_available),
    include_maybe: String(wanted.include_maybe),
  });
  for (const [key, value] of Object.entries(evening())) query.set(key, value);
  const preview = await api("GET", `${PROMOTIONS}/preview?${query}`);
  state.promotionZone = preview.timezone;
  if (!$("start-time").value) $("start-time").value = preview.start_time; // the configured start, to change
  const people = preview.recipient_count === 1 ? "1 player" : `${preview.recipient_count} players`;
  let summary = `${people} would be pinged: ${channelCounts(preview.channels_summary)}.`;
  if (preview.not_opted_in) {
    summary += ` Left out: ${preview.not_opted_in} who never turned promotions on.`;
  }
  $("preview-summary").textContent = summary;
  $("preview-times").textContent =
    `${preview.title ? `${quoted(preview.title)}, ` : ""}${preview.campaign_date}: reminder at ` +
    `${preview.reminder_time}, start at ${preview.start_time} (${preview.timezone}).`;
  $("preview-recipients").replaceChildren(...preview.recipients_preview.map((r) => {
    const item = element("li", `${r.display_name} `);
    item.append(element("span", `${STATUS_NAMES[r.status]}, on ${CHANNEL_NAMES[r.selected_channel]}`, "tag"));
    return item;
  }));
  state.pendingConfirm = preview;
  if (state.campaign) renderCampaign(state.campaign); // now with the zone's name
}

async function askToSchedule(event) {
  event.preventDefault();
  await busy($("schedule"), async () => {
    await loadPreview();
    const preview = state.pendingConfirm;
    const dry = $("dry-run").checked;
    const when = `${preview.title ? `${quoted(preview.title)}, ` : ""}start at ${preview.start_time}`;
    $("confirm-text").textContent = dry
      ? `Dry run (${when}): only you get the reminder, the start ping and the follow-up, on Discord.`
      : `Ping ${preview.recipient_count} ${preview.recipient_count === 1 ? "player" : "players"} tonight ` +
        `(${channelCounts(preview.channels_summary)}; ${when})?`;
    show("confirm", true);
    $("confirm-yes").focus();
  });
}

async function schedule(button) {
  await busy(button, async () => {
    const body = {...includes(), ...evening(), dry_run: $("dry-run").checked};
    const created = await api("POST", `${PROMOTIONS}/campaigns`, body);
    show("confirm", false);
    say(`Campaign ${created.campaign_id} is scheduled${created.dry_run ? " (dry run)" : ""}: reminder at ` +
      `${timeText(created.scheduled_times.reminder)}, start at ${timeText(created.scheduled_times.start)}.`);
    watchCampaign(); // the campaign to watch may be another one now
    $("campaign-title").focus();
  });
}

async function cancelCampaign(button) {
  const campaign = state.campaign;
  if (!campaign) return;
  await busy(button, async () => {
    renderCampaign(await api("POST", `${PROMOTIONS}/campaigns/${campaign.id}/cancel`));
    say(`Campaign ${campaign.id} is cancelled; its pending messages will not go out.`);
  });
}

async function askForMore(event) {
  event.preventDefault();
  const campaign = state.campaign;
  if (!campaign) return;
  const form = event.currentTarget;
  await busy(form.querySelector("button"), async () => {
    const count = Number($("need-count").value);
    const answer = await api("POST", `${PROMOTIONS}/campaigns/${campaign.id}/need`, {count});
    say(answer.messaged
      ? `Asked ${answer.messaged} ${answer.messaged === 1 ? "player" : "players"} to join campaign ${campaign.id}.`
      : "Nobody else is available or maybe tonight who was not asked already.");
  });
}

// -- standing weekly sessions --------------------------------------------------------------

function decisionText(decision) {
  if (decision.outcome === null) return "";
  const what = OUTCOMES[decision.outcome] || decision.outcome;
  return decision.detail ? `${what}: ${decision.detail}` : what;
}

function renderStanding(sessions) {
  const list = $("standing-list");
  list.replaceChildren(...sessions.map((session) => {
    const item = element("li");
    item.dataset.session = String(session.id);
    const name = `${WEEKDAYS[session.weekday]}s at ${session.start_time}`;
    const head = element("p");
    head.append(element("strong", name));
    if (session.title) head.append(document.createTextNode(` ${quoted(session.title)}`));
    const counted = ["looking", session.include_available ? "available" : "", session.include_maybe ? "maybe" : ""]
      .filter(Boolean).join(", ");
    head.append(document.createTextNode(
      ` (${state.promotionZone || "community time"}): needs ${session.quorum} ` +
      `${session.quorum === 1 ? "player" : "players"} (${counted}); added by ${session.created_by}.`,
    ));
    item.append(head);
    if (session.next_decision) {
      const next = element("p", `Next: ${session.next_decision.session_date}, decided at `, "muted");
      next.append(timeElement(session.next_decision.decide_at), document.createTextNode("."));
      item.append(next);
    }
    if (session.last_decision) {
      item.append(element("p", `Last: ${session.last_decision.session_date}, ${decisionText(session.last_decision)}.`,
        "muted"));
    }
    const remove = element("button", "Remove", "quiet");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove the ${name} session`);
    remove.addEventListener("click", () => removeStanding(remove, session.id, name));
    item.append(remove);
    return item;
  }));
  if (!sessions.length) list.append(element("li", "None yet.", "muted"));
}

async function loadStanding() {
  renderStanding((await api("GET", STANDING)).standing);
}

async function addStanding(event) {
  event.preventDefault();
  const body = {
    weekday: $("standing-weekday").value,
    start_time: $("standing-start").value,
    quorum: Number($("standing-quorum").value),
    include_available: $("standing-available").checked,
    include_maybe: $("standing-maybe").checked,
  };
  const title = $("standing-title-input").value;
  if (title.trim()) body.title = title;
  await busy($("standing-add"), async () => {
    const added = await api("POST", STANDING, body);
    await loadStanding();
    say(`Added: ${WEEKDAYS[added.weekday]}s at ${added.start_time}` +
      (added.next_decision ? `; first decided on ${added.next_decision.session_date}.` : "."));
    $("standing-title-input").value = "";
  });
}

async function removeStanding(button, id, name) {
  await busy(button, async () => {
    await api("DELETE", `${STANDING}/${id}`);
    await loadStanding();
    say(`Removed the ${name} session; a campaign it already created stays.`);
    $("standing-title").focus();
  });
}

// -- the campaign, live --------------------------------------------------------------------

const FINISHED = new Set(["sent", "partial", "failed", "followup_sent", "cancelled"]);

function renderCampaign(campaign) {
  state.campaign = campaign;
  show("no-campaign", !campaign);
  show("campaign-view", Boolean(campaign));
  if (!campaign) return;
  const kind = campaign.dry_run ? "dry run" : "campaign";
  const title = campaign.title ? ` ${quoted(campaign.title)}` : "";
  $("campaign-headline").replaceChildren(
    document.createTextNode(`${campaign.campaign_date}, ${kind} ${campaign.id}${title} by ${campaign.initiator}: `),
    element("strong", campaign.status.replace("_", " "), `state ${campaign.status}`),
  );
  // The start as it was scheduled (a start already past moved to just after the scheduling).
  const startJob = campaign.jobs.find((job) => job.job_type === "send_start_2100");
  $("campaign-start").replaceChildren(
    startJob ? timeElement(startJob.run_at) : document.createTextNode(campaign.start_time || "the configured start"),
  );
  const standing = campaign.standing_session;
  show("campaign-standing-term", Boolean(standing));
  show("campaign-standing", Boolean(standing));
  if (standing) {
    $("campaign-standing").textContent = `${WEEKDAYS[standing.weekday]}s at ${standing.start_time}` +
      (standing.removed ? " (removed since)" : "");
  }
  $("campaign-recipients").textContent = `${campaign.recipient_count} (${channelCounts(campaign.channels_summary)})`;
  const d = campaign.delivery;
  $("campaign-delivery").textContent =
    `sent ${d.sent} · skipped ${d.skipped} · failed ${d.failed} · unknown ${d.unknown}`;
  const a = campaign.rsvp;
  const asked = campaign.need.asked ? ` · asked for more ${campaign.need.asked}, joined ${campaign.need.joined}` : "";
  $("campaign-answers").textContent = `in ${a.in} · running late ${a.late} · can't tonight ${a.out}${asked}`;
  $("campaign-jobs").replaceChildren(...campaign.jobs.map((job) => {
    const item = element("li", `${JOB_NAMES[job.job_type] || job.job_type} at `);
    item.dataset.job = job.job_type;
    item.append(timeElement(job.run_at), document.createTextNode(": "));
    item.append(element("span", job.status, `state ${job.status}`));
    if (job.attempts > 1) item.append(document.createTextNode(` (attempt ${job.attempts} of ${job.max_attempts})`));
    return item;
  }));
  const promoter = Boolean(state.access && state.access.can_promote);
  show("cancel-campaign", promoter && !FINISHED.has(campaign.status));
  // Asking makes sense until the voice check runs; a dry run reaches only its promoter.
  const voiceCheck = campaign.jobs.find((job) => job.job_type === "voice_check_2100");
  show("need-form", promoter && !campaign.dry_run && campaign.status !== "cancelled" &&
    Boolean(voiceCheck) && voiceCheck.status === "pending");
}

function stopWatching() {
  if (state.events) state.events.close();
  state.events = null;
  if (state.pollTimer !== null) clearInterval(state.pollTimer);
  state.pollTimer = null;
}

// Server-sent events first: one event now and one on every change. If they cannot be had (an old
// browser, a proxy that buffers, the server's stream limit), ask every few seconds with the ETag.
function watchCampaign() {
  stopWatching();
  if (typeof EventSource !== "function") {
    pollCampaign();
    return;
  }
  let failures = 0;
  const events = new EventSource(`${CAMPAIGN}/events`);
  state.events = events;
  events.addEventListener("open", () => {
    $("live-mode").textContent = "Live: updates as they happen.";
  });
  events.addEventListener("campaign", (event) => {
    failures = 0;
    renderCampaign(JSON.parse(event.data));
    loadBoard().catch(failed);
  });
  events.addEventListener("error", () => {
    failures += 1;
    if (events.readyState === EventSource.CLOSED || failures >= SSE_FAILURES_BEFORE_POLLING) {
      pollCampaign();
    }
  });
}

function pollCampaign() {
  stopWatching();
  state.etag = null;
  $("live-mode").textContent = `Refreshing every ${POLL_MS / 1000} seconds.`;
  const once = async () => {
    if (document.hidden) return;
    const headers = {Accept: "application/json"};
    if (state.etag) headers["If-None-Match"] = state.etag;
    try {
      const response = await fetch(CAMPAIGN, {headers, credentials: "same-origin", cache: "no-store"});
      if (response.status === 304) return; // what the page shows is still right
      if (!response.ok) throw new ApiError(response.status, "http", `The server answered ${response.status}.`);
      state.etag = response.headers.get("ETag");
      renderCampaign((await response.json()).campaign);
    } catch (error) {
      failed(error);
    }
  };
  once();
  state.pollTimer = setInterval(once, POLL_MS);
}

// -- wiring --------------------------------------------------------------------------------

function wire() {
  $("sign-out").addEventListener("click", (event) => busy(event.currentTarget, signOut));
  for (const button of document.querySelectorAll("button.status")) {
    button.addEventListener("click", () => setStatus(button));
  }
  $("consent-yes").addEventListener("click", (event) => answerConsent(event.currentTarget, true));
  $("consent-no").addEventListener("click", (event) => answerConsent(event.currentTarget, false));
  $("prefs-form").addEventListener("submit", savePreferences);
  $("timezone-browser").addEventListener("click", () => {
    $("timezone").value = viewerZone;
  });
  $("telegram-link").addEventListener("click", (event) => linkTelegram(event.currentTarget));
  $("telegram-unlink").addEventListener("click", (event) => unlink(event.currentTarget, "telegram"));
  $("signal-number-form").addEventListener("submit", requestSignalCode);
  $("signal-code-form").addEventListener("submit", confirmSignalCode);
  $("signal-unlink").addEventListener("click", (event) => unlink(event.currentTarget, "signal"));
  for (const id of ["include-available", "include-maybe"]) {
    $(id).addEventListener("change", () => {
      show("confirm", false);
      loadPreview().catch(failed);
    });
  }
  $("dry-run").addEventListener("change", () => show("confirm", false));
  for (const id of ["start-time", "title"]) {
    $(id).addEventListener("change", () => {
      show("confirm", false);
      loadPreview().catch(failed);
    });
  }
  $("standing-form").addEventListener("submit", addStanding);
  $("standing-title").tabIndex = -1;
  $("promote-form").addEventListener("submit", askToSchedule);
  $("confirm-yes").addEventListener("click", (event) => schedule(event.currentTarget));
  $("confirm-back").addEventListener("click", () => {
    show("confirm", false);
    $("schedule").focus();
  });
  $("cancel-campaign").addEventListener("click", (event) => cancelCampaign(event.currentTarget));
  $("need-form").addEventListener("submit", askForMore);
  $("campaign-title").tabIndex = -1;
}

wire();
fillTimezones();
start();
