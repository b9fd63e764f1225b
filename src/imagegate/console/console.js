// imagegate console: sign in with an API key, then one tab per panel. Each panel is its own module
// exporting `panel` = { name, admin, init(), enter(), leave(), show(), hide() }: init once at load,
// enter/leave on sign-in/out, show/hide as its tab is selected (live panels poll only while shown).
// Plain ES modules, no framework, no build step; every call goes to this gateway's own API.

import { $, ApiError, api, showError, state } from "./api.js";
import { panel as gallery } from "./gallery.js";
import { panel as keys } from "./keys.js";
import { panel as models } from "./models.js";
import { panel as playground } from "./playground.js";
import { panel as spend } from "./spend.js";
import { panel as tasks } from "./tasks.js";

const STORE = "imagegate.console.key";
const PANELS = [playground, gallery, tasks, keys, spend, models];
let shown = null;

function usable() {
  return PANELS.filter((p) => state.admin || !p.admin);
}

async function signIn(key) {
  await api("GET", "v1/tasks?limit=1", undefined, { key });  // a 401 here: the key is wrong (the model list is open)
  let admin = false;
  try {
    await api("GET", "admin/v1/keys", undefined, { key });
    admin = true;
  } catch (err) {
    if (err.status !== 403) throw err;
  }
  state.key = key;
  state.admin = admin;
  sessionStorage.setItem(STORE, key);
  await enter();
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
