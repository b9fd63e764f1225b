// imagegate console: sign in with an API key, then one tab per panel. Each panel is its own module
// exporting `panel` = { name, admin, init(), enter(), leave(), show(), hide() }: init once at load,
// enter/leave on sign-in/out, show/hide as its tab is selected (live panels poll only while shown).
// Plain ES modules, no framework, no build step; every call goes to this gateway's own API.

import { $, ApiError, api, setText, showError, state } from "./api.js";
import { panel as gallery } from "./gallery.js";
import { panel as keys } from "./keys.js";
import { panel as models } from "./models.js";
import { panel as playground } from "./playground.js";
import { panel as spend } from "./spend.js";
import { panel as tasks } from "./tasks.js";

const STORE = "imagegate.console.key";
const PANELS = [playground, gallery, tasks, keys, spend, models];
let shown = null;
let shownKey = null;  // the signed-in key's object, as GET v1/key last answered

function usable() {
  return PANELS.filter((p) => state.admin || !p.admin);
}

async function signIn(key) {
  const own = await api("GET", "v1/key", undefined, { key });  // a 401 here: the key is wrong
  state.key = key;
  state.admin = own.is_admin;
  sessionStorage.setItem(STORE, key);
  showKey(own);
  await enter();
}

// "$2.50", "$10", or every digit of an amount finer than a cent ("$0.004").
function money(value) {
  const cents = Math.round(value * 100);
  if (Math.abs(value * 100 - cents) > 1e-6) return `$${value}`;
  return cents % 100 === 0 ? `$${cents / 100}` : `$${(cents / 100).toFixed(2)}`;
}

// The header's line about the signed-in key: "alice · $2.50 left · $0.40 of $10 this month".
function keySummary(own) {
  const parts = [own.name, own.unlimited ? "unlimited" : `${money(own.credits)} left`];
  if (own.monthly_budget_usd !== null) {
    parts.push(`${money(own.month_spend_usd)} of ${money(own.monthly_budget_usd)} this month`);
  }
  return parts.join(" · ");
}

function showKey(own, note = "") {
  shownKey = own;
  setText($("key-summary"), keySummary(own) + note);
  $("key-info").hidden = false;
}

async function updateKey() {
  const button = $("key-update");
  const key = state.key;
  button.disabled = true;
  try {
    const own = await api("GET", "v1/key", undefined, { key });
    if (state.key === key) showKey(own);  // unless the user signed out meanwhile
  } catch (err) {
    if (state.key !== key) return;
    if (err.status === 401) signOut();  // revoked or expired since sign-in
    else showKey(shownKey, ` (not updated: ${err.message})`);
  } finally {
    button.disabled = false;
  }
}

function signOut() {
  if (shown) shown.hide();
  shown = null;
  for (const p of usable()) p.leave();
  sessionStorage.removeItem(STORE);
  Object.assign(state, { key: null, admin: false, models: [] });
  $("signin").hidden = false;
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  $("key-info").hidden = true;
  setText($("key-summary"), "");
  shownKey = null;
  for (const p of PANELS) $(`panel-${p.name}`).hidden = true;
  $("api-key").value = "";
  $("api-key").focus();
}

async function enter() {
  $("signin").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  for (const p of PANELS) $(`tab-${p.name}`).hidden = p.admin && !state.admin;
  selectTab("playground");
  await Promise.all(usable().map((p) => p.enter()));
}

function tabs() {
  return [...document.querySelectorAll('[role="tab"]')].filter((t) => !t.hidden);
}

function selectTab(name, focus = false) {
  for (const p of PANELS) {
    const on = p.name === name;
    const tab = $(`tab-${p.name}`);
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(`panel-${p.name}`).hidden = !on;
    if (on && focus) tab.focus();
  }
  const next = PANELS.find((p) => p.name === name);
  if (shown && shown !== next) shown.hide();
  if (next && shown !== next) {
    shown = next;
    next.show();
  }
}

function onTabKey(event) {
  const list = tabs();
  const at = list.indexOf(document.activeElement);
  if (at < 0) return;
  const moves = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: list.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = list[(moves[event.key] + list.length) % list.length];
  selectTab(next.id.replace("tab-", ""), true);
}

function wire() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("signin-error"), null);
    try {
      await signIn($("api-key").value.trim());
    } catch (err) {
      showError($("signin-error"), err.status === 401 ? new ApiError(401, { message: "That key is not valid." }) : err);
    }
  });
  $("sign-out").addEventListener("click", signOut);
  $("key-update").addEventListener("click", updateKey);
  $("tabs").addEventListener("keydown", onTabKey);
  for (const p of PANELS) {
    $(`tab-${p.name}`).addEventListener("click", () => selectTab(p.name));
    p.init();
  }
}

wire();
const saved = sessionStorage.getItem(STORE);
if (saved) signIn(saved).catch(() => signOut());
else $("api-key").focus();
