// credgate's web console: a client of the management API and nothing more.
//
// - The administrator signs in with their organisation's management client (or pastes a
//   bearer token); the token lives in this module's memory only: never in localStorage,
//   sessionStorage, a cookie or the URL. Reloading the page signs out.
// - Every element is built with textContent: no string ever becomes markup (the page's
//   Content-Security-Policy enforces it with Trusted Types).
// - Every API error is shown in words; nothing fails silently.
// - Views are chosen by the URL's fragment (#/orgs/acme/clients/...), which holds ids only.

"use strict";

/** What the gateway told us (settings.json) and who is signed in. */
const state = {
  settings: null,
  token: null,
  expiresAt: 0,
  expiryTimer: 0,
  org: "", // the signed-in organisation
  client: "",
  operator: false,
  orgs: [], // operators: every organisation
};

const DAY_MS = 24 * 3600 * 1000;
/** Secrets that expire within this are highlighted. */
const SOON_MS = 30 * DAY_MS;

// ---------------------------------------------------------------------------------------------
// Building the page

/** An element: `props` sets attributes (`text` the text, `on<event>` listeners). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = value;
    else if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const app = () => document.getElementById("app");

/** Replaces the main view with `children` and moves focus to it (for screen readers). */
function show(...children) {
  const main = app();
  main.replaceChildren(...children);
  const heading = main.querySelector("h1");
  (heading || main).setAttribute("tabindex", "-1");
  (heading || main).focus({ preventScroll: true });
}

/** A short message at the top of the page that goes away by itself. */
function notify(message) {
  const notice = document.getElementById("notice");
  notice.textContent = message;
  notice.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => {
    notice.hidden = true;
  }, 6000);
}

/** A box that says what went wrong (role=alert: read out at once). */
function errorBox() {
  const box = h("div", { class: "error", role: "alert", hidden: true });
  box.report = (error) => {
    if (error instanceof SignedOut) return;
    box.textContent = error.message || String(error);
    box.hidden = false;
  };
  box.clear = () => {
    box.textContent = "";
    box.hidden = true;
  };
  return box;
}

function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  const hintEl = hint ? h("span", { class: "hint", id: `${id}-hint`, text: hint }) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id, text: label }), input, hintEl);
}

function button(text, onclick, kind = "") {
  return h("button", { type: "button", class: `btn ${kind}`.trim(), onclick, text });
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind}`, text });
}

function link(text, hash) {
  return h("a", { href: hash, text });
}

function orgHash(org, ...rest) {
  const parts = ["orgs", org, ...rest].map(encodeURIComponent);
  return `#/${parts.join("/")}`;
}

// ---------------------------------------------------------------------------------------------
// Words for times and durations

/** `2027-01-31T12:00:00Z` as `2027-01-31 12:00 UTC`. */
function instant(text) {
  if (!text) return "never";
  return text.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC");
}

function duration(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** `YYYY-MM-DD` of a date `days` from today (UTC), for date inputs. */
function dateFromToday(days) {
  return new Date(Date.now() + days * DAY_MS).toISOString().slice(0, 10);
}

/** The expiry cell of a secret or client: the instant, highlighted when near or past. */
function expiryCell(text) {
  if (!text) return h("span", { text: "never" });
  const left = Date.parse(text) - Date.now();
  const cell = h("span", { text: instant(text) });
  if (left <= 0) cell.append(" ", badge("expired", "bad"));
  else if (left <= SOON_MS) cell.append(" ", badge(`in ${Math.ceil(left / DAY_MS)} days`, "warn"));
  return cell;
}

// ---------------------------------------------------------------------------------------------
// Talking to the gateway

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Thrown after a call found the session over: the sign-in page already says why. */
class SignedOut extends Error {}

/** What an API refusal means, in words. */
function explain(status, problem, retryAfter) {
  const detail = problem && typeof problem.detail === "string" ? problem.detail : "";
  const sentence = detail ? `${detail.charAt(0).toUpperCase()}${detail.slice(1)}.` : "";
  switch (status) {
    case 400:
    case 422:
      return `That was not accepted: ${detail || "the request was invalid"}.`;
    case 403:
      return `You may not do this. ${sentence}`.trim();
    case 404:
      return `Not found. ${sentence} It may have been deleted, or you may not manage it.`.trim();
    case 409:
      return `That cannot be done: ${detail}.`;
    case 412:
      return "Someone else changed this client since you opened it. The page now shows their version: check it and make your change again.";
    case 413:
      return "That is too large to send.";
    case 429:
      return `Too many changes in a short time. Try again in ${retryAfter || "a few"} seconds.`;
    default:
      if (status >= 500)
        return `The gateway could not do this (HTTP ${status}). ${sentence} Try again; if it keeps failing, tell your operator.`.trim();
      return `The request failed (HTTP ${status}). ${sentence}`.trim();
  }
}

async function readJson(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/** One management API call: `{data, etag}`, or an ApiError that says what went wrong. */
async function api(method, path, { body, etag, query = "", signingIn = false } = {}) {
  if (!state.token || Date.now() >= state.expiresAt) {
    signOut("Your session has ended. Sign in again to go on.");
    throw new SignedOut();
  }
  const headers = { Accept: "application/json", Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (etag) headers["If-Match"] = etag;
  let response;
  try {
    response = await fetch(`${state.settings.prefix}${path}${query}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError("The gateway could not be reached. Check the connection and try again.", 0, "network");
  }
  const data = await readJson(response);
  if (response.ok) return { data, etag: response.headers.get("ETag") };
  if (response.status === 401 && signingIn)
    throw new ApiError(`The gateway did not accept that token${data && data.detail ? ` (${data.detail})` : ""}.`, 401, "invalid_token");
  if (response.status === 401) {
    signOut(`Your session is no longer valid${data && data.detail ? ` (${data.detail})` : ""}. Sign in again.`);
    throw new SignedOut();
  }
  throw new ApiError(explain(response.status, data, response.headers.get("Retry-After")), response.status, data && data.code);
}

/** The claims of a JWT, unverified: the gateway verifies it on every call. */
function claimsOf(token) {
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

const ORG_ID = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A token from `org`'s token endpoint for the management client `clientId`. */
async function requestToken(org, clientId, secret) {
  const path = state.settings.token_path.replace("{org}", encodeURIComponent(org));
  const form = new URLSearchParams({
    grant_type: "client_credentials",
    scope: state.settings.scope,
    client_id: clientId,
    client_secret: secret,
  });
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: form,
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new Error("The gateway could not be reached. Check the connection and try again.");
  }
  const data = await readJson(response);
  if (response.ok && data && data.access_token) return data.access_token;
  const code = data && data.error;
  if (response.status === 404)
    throw new Error(`There is no organisation "${org}" here. Check the organisation id.`);
  if (code === "invalid_client")
    throw new Error("The client ID or secret is wrong, or the client is disabled or expired.");
  if (code === "invalid_scope")
    throw new Error(`This client may not manage clients: it does not hold the scope "${state.settings.scope}".`);
  if (response.status === 429 || response.status === 503)
    throw new Error("Too many sign-in attempts right now. Wait a minute and try again.");
  const said = data && data.error_description ? `: ${data.error_description}` : "";
  throw new Error(`Sign-in failed (HTTP ${response.status}${said}).`);
}

/** Starts a session with `token`, if it is one of ours for an organisation. */
async function startSession(token) {
  const claims = claimsOf(token);
  if (!claims || typeof claims.exp !== "number")
    throw new Error("That is not a token this gateway issued (a JWT with an expiry).");
  if (!claims.org_id) throw new Error("That token belongs to no organisation.");
  if (claims.exp * 1000 <= Date.now()) throw new Error("That token has expired.");
  state.token = token;
  state.expiresAt = claims.exp * 1000;
  state.org = claims.org_id;
  state.client = claims.client_id || claims.sub || "";
  clearTimeout(state.expiryTimer);
  state.expiryTimer = setTimeout(() => {
    const at = new Date(state.expiresAt).toISOString().slice(11, 16);
    signOut(`Your session expired at ${at} UTC. Sign in again to go on.`);
  }, Math.min(state.expiresAt - Date.now(), 2 ** 31 - 1));
  try {
    const { data } = await api("GET", "/orgs", { signingIn: true });
    state.operator = true;
    state.orgs = data.organizations;
  } catch (error) {
    if (error.status !== 403 || error.code === "insufficient_scope") {
      forget();
      throw error.code === "insufficient_scope"
        ? new Error(`That token does not hold the scope "${state.settings.scope}" needed to manage clients.`)
        : error;
    }
    state.operator = false;
    state.orgs = [];
  }
}

/** Drops every trace of the session. */
function forget() {
  clearTimeout(state.expiryTimer);
  Object.assign(state, { token: null, expiresAt: 0, org: "", client: "", operator: false, orgs: [] });
}

function signOut(message) {
  forget();
  for (const open of document.querySelectorAll("dialog")) open.remove();
  renderNav();
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  renderSignIn(message);
}

// ---------------------------------------------------------------------------------------------
// Sign-in

function renderSignIn(message) {
  const errors = errorBox();
  const prefill = new URLSearchParams(location.search).get("org") || "";
  const org = h("input", { name: "organization", required: true, autocomplete: "organization", value: prefill, spellcheck: "false" });
  const clientId = h("input", { name: "client_id", autocomplete: "username", spellcheck: "false" });
  // A machine credential, pasted from where it is kept: the browser is not asked to save it.
  const secret = h("input", { name: "client_secret", type: "password", autocomplete: "off" });
  const bearer = h("textarea", { name: "bearer", rows: 3, spellcheck: "false", autocomplete: "off" });
  const submit = h("button", { type: "submit", class: "btn primary", text: "Sign in" });
  const form = h(
    "form",
    { class: "card narrow", method: "post", "aria-labelledby": "signin-title", novalidate: true },
    h("h1", { id: "signin-title", text: "Sign in" }),
    h("p", {
      class: "lead",
      text: `Use your organisation's management client: a client that holds the scope "${state.settings.scope}".`,
    }),
    message ? h("div", { class: "info", role: "status", text: message }) : null,
    errors,
    state.settings.org_in_path ? field("Organisation", org, "Your organisation's id, as in its API address.") : null,
    field("Client ID", clientId),
    field("Client secret", secret),
    h("details", {}, h("summary", { text: "Use a bearer token instead" }), field("Bearer token", bearer, "A token this gateway issued with the management scope.")),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.clear();
    submit.disabled = true;
    try {
      const pasted = bearer.value.trim().replace(/^bearer\s+/i, "");
      let token = pasted;
      if (!pasted) {
        const orgId = state.settings.org_in_path ? org.value.trim() : "";
        if (state.settings.org_in_path && !ORG_ID.test(orgId))
          throw new Error("Enter your organisation's id: lower-case letters, digits and hyphens.");
        if (!clientId.value.trim() || !secret.value)
          throw new Error("Enter the client ID and the client secret, or paste a bearer token.");
        token = await requestToken(orgId, clientId.value.trim(), secret.value);
      }
      await startSession(token);
      secret.value = "";
      bearer.value = "";
      // A link into the console (#/orgs/...) is followed once signed in.
      const target = location.hash.startsWith("#/orgs/") ? location.hash : orgHash(state.org, "clients");
      if (location.hash === target) route();
      else location.hash = target;
    } catch (error) {
      errors.report(error);
      submit.disabled = false;
    }
  });
  show(form);
  (state.settings.org_in_path && !prefill ? org : clientId).focus();
}

// ---------------------------------------------------------------------------------------------
// The top bar: who is signed in, the organisation picker (operators), sign out

function renderNav() {
  const nav = document.getElementById("nav");
  if (!state.token) {
    nav.replaceChildren();
    return;
  }
  const current = currentOrg();
  const items = [];
  if (state.operator) {
    const picker = h(
      "select",
      {
        id: "org-picker",
        "aria-label": "Organisation",
        onchange: (event) => {
          location.hash = orgHash(event.target.value, "clients");
        },
      },
      state.orgs.map((o) => h("option", { value: o.id, selected: o.id === current, text: `${o.name} (${o.id})` })),
    );
    items.push(h("label", { class: "picker", for: "org-picker", text: "Organisation" }), picker, link("Organisations", "#/orgs"));
  }
  items.push(link("Clients", orgHash(current, "clients")));
  const ends = new Date(state.expiresAt).toISOString().slice(11, 16);
  items.push(h("span", { class: "who", text: `${state.org}/${state.client} · until ${ends} UTC` }));
  items.push(button("Sign out", () => signOut("You have signed out."), "quiet"));
  nav.replaceChildren(...items);
}

/** The organisation the view is about: the one in the URL, else the signed-in one. */
function currentOrg() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return parts[0] === "orgs" && parts[1] ? parts[1] : state.org;
}

// ---------------------------------------------------------------------------------------------
// Views

function route() {
  if (!state.token) return renderSignIn();
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  renderNav();
  const [top, org, section, id, tab] = parts;
  if (top === "orgs" && !org && state.operator) return renderOrgs();
  if (top !== "orgs" || !org || section !== "clients") {
    location.replace(orgHash(state.org, "clients"));
    return;
  }
  if (!id) return renderClients(org);
  if (id === "new" && !tab) return renderAddClient(org);
  return renderClient(org, id, tab || "details");
}

/** A view that loads first: a heading and "Loading…", then what `load` builds, or its error. */
async function loading(title, load) {
  const errors = errorBox();
  show(h("h1", { text: title }), h("p", { class: "muted", text: "Loading…" }));
  try {
    await load();
  } catch (error) {
    if (error instanceof SignedOut) return;
    errors.report(error);
    show(h("h1", { text: title }), errors);
  }
}

function renderOrgs() {
  return loading("Organisations", async () => {
    const { data } = await api("GET", "/orgs");
    state.orgs = data.organizations;
    renderNav();
    const rows = data.organizations.map((o) =>
      h(
        "tr",
        {},
        h("td", {}, link(o.name, orgHash(o.id, "clients"))),
        h("td", {}, h("code", { text: o.id })),
        h("td", {}, o.enabled ? badge("enabled", "ok") : badge("disabled", "bad")),
        h("td", { class: "num", text: o.clients }),
        h("td", { text: o.scopes.join(" ") || "—" }),
      ),
    );
    show(
      h("h1", { text: "Organisations" }),
      table(["Name", "Id", "State", "Clients", "Scopes"], rows, "No organisations."),
    );
  });
}

function table(headings, rows, empty) {
  if (!rows.length) return h("p", { class: "empty", text: empty });
  return h(
    "div",
    { class: "table-wrap" },
    h("table", {}, h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col", text: t })))), h("tbody", {}, rows)),
  );
}

function stateBadge(client) {
  const kind = { enabled: "ok", disabled: "bad", expired: "warn" }[client.state] || "";
  return badge(client.state, kind);
}

function roleList(client) {
  const all = [...client.default_roles, ...client.roles.filter((r) => !client.default_roles.includes(r))];
  return all.join(", ") || "—";
}

function lifetime(client) {
  return client.token_lifetime ? duration(client.token_lifetime) : `default (${duration(state.settings.default_token_lifetime)})`;
}

/** The secrets cell: how many, and the nearest expiry of a valid one. */
function secretsCell(client) {
  const valid = client.secrets.filter((s) => !s.expired);
  const cell = h("span", { text: `${client.secrets.length}` });
  const next = valid
    .map((s) => s.expires)
    .filter(Boolean)
    .sort()[0];
  if (next) cell.append(" · next expires ", expiryCell(next));
  if (client.secrets.length && !valid.length) cell.append(" ", badge("none valid", "bad"));
  return cell;
}

function renderClients(org) {
  return loading("API clients", async () => {
    const [{ data }, policy] = await Promise.all([api("GET", `/orgs/${encodeURIComponent(org)}/clients`), orgPolicy(org)]);
    const rows = data.clients.map((c) =>
      h(
        "tr",
        {},
        h("td", {}, link(c.name, orgHash(org, "clients", c.id))),
        h("td", {}, h("code", { text: c.id })),
        h("td", { text: roleList(c) }),
        h("td", { text: c.scopes.join(" ") || "—" }),
        h("td", { text: lifetime(c) }),
        h("td", {}, expiryCell(c.expires)),
        h("td", {}, stateBadge(c)),
        h("td", {}, secretsCell(c)),
      ),
    );
    show(
      h(
        "div",
        { class: "heading-row" },
        h("h1", { text: `API clients of ${policy.name}` }),
        h("a", { class: "btn primary", href: orgHash(org, "clients", "new"), text: "Add client" }),
      ),
      table(["Name", "Client ID", "Roles", "Scopes", "Token lifetime", "Expires", "State", "Secrets"], rows, "No API clients yet. Add one to give an integration access."),
    );
  });
}

async function orgPolicy(org) {
  const { data } = await api("GET", `/orgs/${encodeURIComponent(org)}`);
  return data;
}

/** The bounds of a token lifetime in this organisation, in whole minutes. */
function lifetimeBounds(policy) {
  const s = state.settings;
  const max = Math.min(s.max_token_lifetime, policy.max_token_lifetime || Infinity);
  return { min: Math.ceil(s.min_token_lifetime / 60), max: Math.floor(max / 60) };
}

function lifetimeInput(policy, seconds) {
  const { min, max } = lifetimeBounds(policy);
  return h("input", {
    type: "number",
    min,
    max,
    step: 1,
    inputmode: "numeric",
    value: seconds ? Math.round(seconds / 60) : "",
    placeholder: `default (${duration(state.settings.default_token_lifetime)})`,
  });
}

/** Minutes typed into a lifetime input, as seconds (`null`: the default). */
function lifetimeValue(input, policy) {
  const text = input.value.trim();
  if (!text) return null;
  const minutes = Number(text);
  const { min, max } = lifetimeBounds(policy);
  if (!Number.isInteger(minutes) || minutes < min || minutes > max)
    throw new Error(`The token lifetime must be a whole number of minutes from ${min} to ${max}.`);
  return minutes * 60;
}

/** Checkboxes for the organisation's scopes, `chosen` ticked. */
function scopeChoices(policy, chosen) {
  const boxes = policy.scopes.map((scope) => {
    const box = h("input", { type: "checkbox", value: scope, checked: chosen.includes(scope) });
    const label = scope === state.settings.scope ? `${scope} (manages this organisation's clients)` : scope;
    return h("label", { class: "check" }, box, label);
  });
  const set = h("fieldset", { class: "field" }, h("legend", { text: "Scopes" }), boxes.length ? boxes : h("p", { class: "muted", text: "This organisation grants no scopes." }));
  set.values = () => boxes.map((l) => l.firstChild).filter((b) => b.checked).map((b) => b.value);
  return set;
}

/** "Never expires" or a date: `value()` is `null` or `YYYY-MM-DD`. */
function expiryChoice(legend, name, current, defaultDays) {
  const never = h("input", { type: "radio", name, value: "never", checked: !current && defaultDays === null });
  const on = h("input", { type: "radio", name, value: "on", checked: Boolean(current) || defaultDays !== null });
  const date = h("input", {
    type: "date",
    "aria-label": `${legend}: date`,
    value: current ? current.slice(0, 10) : defaultDays !== null ? dateFromToday(defaultDays) : dateFromToday(365),
    min: dateFromToday(1),
  });
  const set = h(
    "fieldset",
    { class: "field" },
    h("legend", { text: legend }),
    h("label", { class: "check" }, never, "Never expires"),
    h("label", { class: "check" }, on, "Expires on ", date, " (UTC)"),
  );
  date.addEventListener("input", () => {
    on.checked = true;
  });
  set.value = () => {
    if (never.checked) return null;
    if (!date.value) throw new Error(`${legend}: choose a date, or "Never expires".`);
    return date.value;
  };
  return set;
}

function words(text) {
  return text
    .split(/[\s,]+/)
    .map((w) => w.trim())
    .filter(Boolean);
}

function renderAddClient(org) {
  return loading("Add client", async () => {
    const policy = await orgPolicy(org);
    const errors = errorBox();
    const name = h("input", { required: true, maxlength: 200, autocomplete: "off" });
    const id = h("input", { maxlength: 128, autocomplete: "off", spellcheck: "false" });
    const scopes = scopeChoices(policy, []);
    const roles = h("input", { autocomplete: "off", spellcheck: "false" });
    const tokenLifetime = lifetimeInput(policy, null);
    const expires = expiryChoice("Client expiry", "client-expiry", null, null);
    const secretDescription = h("input", { value: "First secret", maxlength: 200 });
    const secretExpires = expiryChoice("Secret expiry", "secret-expiry", null, 365);
    const submit = h("button", { type: "submit", class: "btn primary", text: "Add client" });
    const form = h(
      "form",
      { class: "card", method: "post", novalidate: true },
      h("h1", { text: "Add client" }),
      errors,
      field("Name", name, "What the integration is, for people: \"Payroll sync\"."),
      field("Client ID (optional)", id, "Leave empty to make one from the name."),
      scopes,
      h("div", { class: "field" }, h("span", { class: "label", text: "Default roles" }), h("p", { class: "fixed", text: policy.default_roles.join(", ") || "none" }), h("span", { class: "hint", text: "Every token of this organisation carries them." })),
      field("Additional roles", roles, "Separated by spaces or commas."),
      field("Token lifetime (minutes)", tokenLifetime, `From ${lifetimeBounds(policy).min} to ${lifetimeBounds(policy).max}; empty for the default.`),
      expires,
      h("h2", { text: "First secret" }),
      field("Description", secretDescription),
      secretExpires,
      h("div", { class: "actions" }, submit, link("Cancel", orgHash(org, "clients"))),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.clear();
      try {
        if (!name.value.trim()) throw new Error("Give the client a name.");
        const body = {
          name: name.value.trim(),
          scopes: scopes.values(),
          roles: words(roles.value),
          token_lifetime: lifetimeValue(tokenLifetime, policy),
          expires: expires.value(),
          secret_description: secretDescription.value.trim() || "First secret",
          secret_expires: secretExpires.value() || "never",
        };
        if (id.value.trim()) body.id = id.value.trim();
        submit.disabled = true;
        const { data } = await api("POST", `/orgs/${encodeURIComponent(org)}/clients`, { body });
        renderClientAdded(org, data);
      } catch (error) {
        submit.disabled = false;
        errors.report(error);
        errors.scrollIntoView({ block: "nearest" });
      }
    });
    show(form);
  });
}

/** A read-only value with a Copy button. */
function copyable(label, value, secret = false) {
  const input = h("input", { readonly: true, value, class: secret ? "secret mono" : "mono", spellcheck: "false", autocomplete: "off" });
  const copy = button("Copy", async () => {
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      input.select();
      document.execCommand("copy");
    }
    copy.textContent = "Copied";
    setTimeout(() => {
      copy.textContent = "Copy";
    }, 2000);
  });
  copy.setAttribute("aria-label", `Copy ${label.toLowerCase()}`);
  input.id = `c-${Math.random().toString(36).slice(2)}`;
  return h("div", { class: "field" }, h("label", { for: input.id, text: label }), h("div", { class: "copy-row" }, input, copy));
}

const ONCE_WARNING = "Copy the secret now: this is the only time it is shown. credgate keeps only a hash of it; if it is lost, add a new secret.";

/** Where the new client gets its tokens, when this page can tell: in host mode only for the
 * signed-in organisation, whose host this is. */
function tokenEndpointNote(org) {
  const { token_path: path, org_in_path: inPath } = state.settings;
  if (!inPath && org !== state.org) return null;
  return h("p", { class: "muted", text: `Token endpoint: ${location.origin}${path.replace("{org}", encodeURIComponent(org))}` });
}

/** The "Client added" screen: the id and the secret, shown this once. */
function renderClientAdded(org, created) {
  const client = created.client;
  show(
    h(
      "section",
      { class: "card" },
      h("h1", { text: "Client added" }),
      h("p", { class: "warning", role: "alert", text: ONCE_WARNING }),
      copyable("Client ID", client.id),
      copyable("Client secret", created.client_secret, true),
      tokenEndpointNote(org),
      h("div", { class: "actions" }, h("a", { class: "btn primary", href: orgHash(org, "clients", client.id), text: "Done" })),
    ),
  );
}

/** A modal dialog; resolves with what `collect` returns on confirm, or null. */
function dialog({ title, body = [], confirm, danger = false, cancellable = true, collect = () => true, ready = () => true }) {
  return new Promise((resolve) => {
    const errors = errorBox();
    const ok = h("button", { type: "submit", class: `btn ${danger ? "danger" : "primary"}`, text: confirm });
    const cancel = button("Cancel", () => close(null));
    const titleId = `d-${Math.random().toString(36).slice(2)}`;
    const form = h("form", { method: "dialog", novalidate: true }, h("h2", { id: titleId, text: title }), body, errors, h("div", { class: "actions" }, ok, cancellable ? cancel : null));
    const box = h("dialog", { "aria-labelledby": titleId }, form);
    const close = (value) => {
      box.close();
      box.remove();
      resolve(value);
    };
    const update = () => {
      ok.disabled = !ready();
    };
    form.addEventListener("input", update);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      try {
        close(collect());
      } catch (error) {
        errors.report(error);
      }
    });
    box.addEventListener("cancel", (event) => {
      event.preventDefault();
      close(null);
    });
    document.body.append(box);
    update();
    box.showModal();
    (form.querySelector("input:not([readonly]), textarea") || (danger ? cancel : ok)).focus();
  });
}

/** Shows a new secret once; the dialog and its value are gone when it closes. */
function showSecretOnce(title, clientId, created) {
  return dialog({
    title,
    confirm: "I have copied it",
    cancellable: false,
    body: [
      h("p", { class: "warning", text: ONCE_WARNING }),
      copyable("Client ID", clientId),
      copyable("Secret id", created.secret.id),
      copyable("Client secret", created.client_secret, true),
    ],
  });
}

/** The client page; `problem`, an error of the action that led here, is shown on it. */
function renderClient(org, id, tab, problem) {
  const base = `/orgs/${encodeURIComponent(org)}/clients/${encodeURIComponent(id)}`;
  return loading("API client", async () => {
    const [{ data: client, etag }, policy] = await Promise.all([api("GET", base), orgPolicy(org)]);
    const errors = errorBox();
    if (problem) errors.report(problem);
    /** Runs an action, then shows the page again (or the error; on the fresh page when the
     * client changed under us). */
    const act = async (work, done) => {
      errors.clear();
      try {
        await work();
        if (done) notify(done);
        renderClient(org, id, tab);
      } catch (error) {
        if (error.status === 412) renderClient(org, id, tab, error);
        else errors.report(error);
      }
    };
    const patch = (body, done) => act(() => api("PATCH", base, { body, etag }), done);
    const actions = h(
      "div",
      { class: "actions" },
      client.enabled
        ? button("Disable", () => patch({ enabled: false }, "Client disabled: it gets no new tokens and its tokens are refused."))
        : button("Enable", () => patch({ enabled: true }, "Client enabled.")),
      button("Revoke all tokens", async () => {
        const yes = await dialog({
          title: "Revoke all tokens?",
          body: [h("p", { text: `Every token ${client.name} holds now stops working at once. It can get new ones with its secret.` })],
          confirm: "Revoke all tokens",
          danger: true,
        });
        if (yes) act(() => api("POST", `${base}/revoke-tokens`), "Every token issued so far is refused from now on.");
      }),
      button(
        "Delete",
        async () => {
          const typed = h("input", { autocomplete: "off", spellcheck: "false" });
          const yes = await dialog({
            title: `Delete ${client.name}?`,
            body: [
              h("p", { text: "The client, its secrets and its roles are removed, and its tokens stop working. This cannot be undone." }),
              field(`Type the client ID (${client.id}) to confirm`, typed),
            ],
            confirm: "Delete client",
            danger: true,
            ready: () => typed.value === client.id,
          });
          if (!yes) return;
          errors.clear();
          try {
            await api("DELETE", base, { etag });
            notify(`Client ${client.id} deleted.`);
            location.hash = orgHash(org, "clients");
          } catch (error) {
            errors.report(error);
          }
        },
        "danger",
      ),
    );
    const tabs = h(
      "nav",
      { class: "tabs", "aria-label": "Client sections" },
      [
        ["details", "Details"],
        ["secrets", `Secrets (${client.secrets.length})`],
        ["roles", "Roles"],
      ].map(([key, label]) => h("a", { href: orgHash(org, "clients", id, key), "aria-current": key === tab ? "page" : false, text: label })),
    );
    const panel = { details: detailsPanel, secrets: secretsPanel, roles: rolesPanel }[tab] || detailsPanel;
    show(
      h("p", { class: "crumbs" }, link("API clients", orgHash(org, "clients")), " / ", client.id),
      h("div", { class: "heading-row" }, h("h1", { text: client.name }), stateBadge(client)),
      errors,
      actions,
      tabs,
      panel({ org, base, client, etag, policy, act, patch }),
    );
  });
}

function detailsPanel({ client, policy, patch }) {
  const rows = [
    ["Client ID", h("code", { text: client.id })],
    ["Name", client.name],
    ["Scopes", client.scopes.join(" ") || "—"],
    ["Roles", roleList(client)],
    ["Token lifetime", lifetime(client)],
    ["Expires", expiryCell(client.expires)],
    ["State", stateBadge(client)],
    ["Tokens refused if issued before", client.tokens_not_before ? instant(client.tokens_not_before) : "—"],
  ];
  const list = h("dl", { class: "details" }, rows.map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]));
  const panel = h("section", { class: "card" }, list, h("div", { class: "actions" }, button("Edit", () => panel.replaceWith(editForm()))));
  const editForm = () => {
    const errors = errorBox();
    const name = h("input", { value: client.name, required: true, maxlength: 200 });
    const scopes = scopeChoices(policy, client.scopes);
    const tokenLifetime = lifetimeInput(policy, client.token_lifetime);
    const expires = expiryChoice("Client expiry", "edit-expiry", client.expires, null);
    const form = h(
      "form",
      { class: "card", method: "post", novalidate: true },
      h("h2", { text: "Edit client" }),
      errors,
      field("Name", name),
      scopes,
      field("Token lifetime (minutes)", tokenLifetime, "Empty for the default."),
      expires,
      h("div", { class: "actions" }, h("button", { type: "submit", class: "btn primary", text: "Save" }), button("Cancel", () => form.replaceWith(panel))),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      errors.clear();
      try {
        if (!name.value.trim()) throw new Error("Give the client a name.");
        patch({ name: name.value.trim(), scopes: scopes.values(), token_lifetime: lifetimeValue(tokenLifetime, policy), expires: expires.value() }, "Client saved.");
      } catch (error) {
        errors.report(error);
      }
    });
    return form;
  };
  return panel;
}

function secretsPanel({ base, client, act }) {
  const valid = client.secrets.filter((s) => !s.expired);
  const askNewSecret = (title, confirm, warning) => {
    const description = h("input", { maxlength: 200, value: "" });
    const expires = expiryChoice("Expiry", "new-secret-expiry", null, 365);
    return dialog({
      title,
      confirm,
      danger: Boolean(warning),
      body: [warning ? h("p", { class: "warning", text: warning }) : null, field("Description", description, "Where the secret will be used."), expires],
      collect: () => ({ description: description.value.trim() || undefined, expires: expires.value() || "never" }),
    });
  };
  const add = async () => {
    const input = await askNewSecret("Add secret", "Add secret");
    if (!input) return;
    act(async () => {
      const { data } = await api("POST", `${base}/secrets`, { body: input });
      await showSecretOnce("Secret added", client.id, data);
    }, "Secret added.");
  };
  const regenerate = async () => {
    const input = await askNewSecret(
      "Regenerate secret?",
      "Regenerate secret",
      `Every secret ${client.name} has now stops working at once and is replaced by one new secret. Integrations using the old ones fail until they are given the new one.`,
    );
    if (!input) return;
    act(async () => {
      const { data } = await api("POST", `${base}/secrets/regenerate`, { body: input });
      await showSecretOnce("New secret", client.id, data);
    }, "Secret regenerated: the old secrets no longer work.");
  };
  const remove = async (secret) => {
    const yes = await dialog({
      title: "Remove secret?",
      body: [h("p", { text: `Secret ${secret.id} (${secret.description || "no description"}) stops working at once.` })],
      confirm: "Remove secret",
      danger: true,
    });
    if (!yes) return;
    const last = !secret.expired && valid.length === 1;
    if (last) {
      const sure = await dialog({
        title: "Remove the last valid secret?",
        body: [h("p", { class: "warning", text: `This is the only valid secret of ${client.name}. Without it the client cannot get tokens until you add a new secret.` })],
        confirm: "Remove it anyway",
        danger: true,
      });
      if (!sure) return;
    }
    const query = last ? "?force=true" : "";
    act(() => api("DELETE", `${base}/secrets/${encodeURIComponent(secret.id)}`, { query }), "Secret removed.");
  };
  // A client keeps at least one secret (the API refuses to remove the only one).
  const only = client.secrets.length === 1;
  const rows = client.secrets.map((s) =>
    h(
      "tr",
      {},
      h("td", {}, h("code", { text: s.id })),
      h("td", { text: s.description || "—" }),
      h("td", { text: s.created ? instant(s.created) : "—" }),
      h("td", {}, expiryCell(s.expires)),
      h("td", {}, removeButton(s)),
    ),
  );
  function removeButton(secret) {
    const remover = button("Remove", () => remove(secret), "small danger-quiet");
    if (only) {
      remover.disabled = true;
      remover.setAttribute("aria-describedby", "only-secret");
    }
    return remover;
  }
  return h(
    "section",
    { class: "card" },
    h("div", { class: "actions" }, button("Add secret", add, "primary"), button("Regenerate secret", regenerate)),
    table(["Id", "Description", "Created", "Expires", ""], rows, "This client has no secrets: add one so it can get tokens."),
    only ? h("p", { class: "hint", id: "only-secret", text: "A client keeps at least one secret: to replace its only one, use Regenerate secret." }) : null,
  );
}

function rolesPanel({ client, patch }) {
  const own = client.roles.filter((r) => !client.default_roles.includes(r));
  const input = h("input", { autocomplete: "off", spellcheck: "false" });
  const errors = errorBox();
  const form = h(
    "form",
    { class: "inline", method: "post", novalidate: true },
    field("Add roles", input, "Separated by spaces or commas; they are in the client's next token."),
    h("button", { type: "submit", class: "btn primary", text: "Add" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const added = words(input.value).filter((r) => !own.includes(r) && !client.default_roles.includes(r));
    if (!added.length) return errors.report(new Error("Type a role that the client does not hold yet."));
    patch({ roles: [...own, ...added] }, `Role${added.length > 1 ? "s" : ""} added.`);
  });
  const rows = [
    ...client.default_roles.map((r) => h("tr", {}, h("td", {}, h("code", { text: r })), h("td", {}, badge("default", "muted")), h("td", { class: "muted", text: "Set by the organisation" }))),
    ...own.map((r) =>
      h(
        "tr",
        {},
        h("td", {}, h("code", { text: r })),
        h("td", {}, badge("client", "ok")),
        h("td", {}, button("Remove", () => patch({ roles: own.filter((x) => x !== r) }, "Role removed."), "small danger-quiet")),
      ),
    ),
  ];
  return h("section", { class: "card" }, errors, table(["Role", "Kind", ""], rows, "No roles."), form);
}

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  try {
    const response = await fetch("settings.json", { cache: "no-store", credentials: "omit" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.settings = await response.json();
  } catch (error) {
    show(h("h1", { text: "The console cannot start" }), h("p", { class: "error", role: "alert", text: `Its settings could not be read (${error.message}). Reload the page to try again.` }));
    return;
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
