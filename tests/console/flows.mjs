// The web console's flows, walked in Debian's chromium (playwright-core drives it over CDP; no
// browser is downloaded) against a real gateway started by tests/console.rs, which passes
// the scenario and its settings:
//
//   node tests/console/flows.mjs <scenario> '{"base": "http://127.0.0.1:PORT", ...}'
//
// Every check that needs the gateway itself (a token with a secret read off the page, a
// protected call) is a real HTTP request. On success the scenario prints a JSON object of what
// it saw for the Rust test to check further; on failure it prints why and exits 1. With
// CONSOLE_SCREENSHOTS=<dir>, each main screen is saved there as a PNG (docs/console/).

import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const [scenario, settingsText] = process.argv.slice(2);
const cfg = JSON.parse(settingsText);
const CONSOLE = `${cfg.base}/manage/v1/console/`;
const SHOTS = process.env.CONSOLE_SCREENSHOTS;
const TIMEOUT = 10_000;

// ---------------------------------------------------------------------------------------------
// The gateway, over HTTP

async function token(org, client, secret) {
  const response = await fetch(`${cfg.base}/${org}/connect/token`, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      Authorization: `Basic ${Buffer.from(`${encodeURIComponent(client)}:${encodeURIComponent(secret)}`).toString("base64")}`,
    },
    body: "grant_type=client_credentials",
  });
  const body = await response.json().catch(() => null);
  return { status: response.status, body };
}

function claims(accessToken) {
  return JSON.parse(Buffer.from(accessToken.split(".")[1], "base64url").toString());
}

/** Polls `check` until it is true (a change reaches the gateway through its file watcher). */
async function eventually(what, check, limit = 5000) {
  const deadline = Date.now() + limit;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`not within ${limit} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function tokenStatus(org, client, secret) {
  return (await token(org, client, secret)).status;
}

async function protectedStatus(path, accessToken) {
  const response = await fetch(`${cfg.base}${path}`, { headers: { Authorization: `Bearer ${accessToken}` } });
  return response.status;
}

// ---------------------------------------------------------------------------------------------
// The browser

async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // As the machines' own probe found: without these, chromium's background connections
    // are refused by the closed network at every start.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const seen = { errors: [], violations: [] };
  page.on("pageerror", (e) => seen.errors.push(e.message));
  await page.exposeFunction("__reportViolation", (v) => seen.violations.push(v));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => window.__reportViolation(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return { browser, context, page, seen };
}

async function shot(page, name) {
  if (!SHOTS) return;
  await page.waitForTimeout(150); // let the focus ring and fonts settle
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** Signs in from the page's sign-in form (`fresh`: load the page first). */
async function signIn(page, { org, client, secret }, fresh = true) {
  if (fresh) await page.goto(`${CONSOLE}?org=${org}`);
  else await page.getByLabel("Organisation").fill(org);
  await page.getByLabel("Client ID", { exact: true }).fill(client);
  await page.getByLabel("Client secret", { exact: true }).fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

/** Neither storage, nor a cookie, nor the URL ever holds a secret or a token. */
async function assertNothingStored(page, context, secrets) {
  const kept = await page.evaluate(() => ({
    local: Object.keys(localStorage).length,
    session: Object.keys(sessionStorage).length,
    cookie: document.cookie,
    url: location.href,
  }));
  assert.equal(kept.local, 0, "localStorage holds something");
  assert.equal(kept.session, 0, "sessionStorage holds something");
  assert.equal(kept.cookie, "", "a cookie was set");
  assert.deepEqual(await context.cookies(), [], "a cookie was set");
  for (const secret of secrets) {
    assert.ok(!kept.url.includes(secret) && !page.url().includes(secret), "a secret is in the URL");
  }
}

async function confirmDialog(page, title, button) {
  const dialog = page.getByRole("dialog", { name: title });
  await dialog.waitFor();
  await dialog.getByRole("button", { name: button }).click();
  await dialog.waitFor({ state: "detached" });
}

/** The secret shown once in the open dialog, which is then closed. */
async function readSecretDialog(page, title) {
  const dialog = page.getByRole("dialog", { name: title });
  await dialog.waitFor();
  const secret = await dialog.getByLabel("Client secret", { exact: true }).inputValue();
  const id = await dialog.getByLabel("Secret id", { exact: true }).inputValue();
  return { dialog, secret, id };
}

function rowOf(page, text) {
  return page.getByRole("row").filter({ hasText: text });
}

// ---------------------------------------------------------------------------------------------
// Scenarios

const scenarios = {
  /** The seeds' whole flow for one organisation administrator. */
  async clients({ page, context }) {
    const acme = cfg.admin;
    await page.goto(`${CONSOLE}?org=acme`);
    await shot(page, "sign-in");
    await signIn(page, acme);
    await page.getByRole("heading", { name: "API clients of Acme Corp" }).waitFor();
    await assertNothingStored(page, context, [acme.secret]);
    // A secret expiring within 30 days is highlighted; an expired client says so.
    await rowOf(page, "Existing app").getByText(/^in (9|10) days$/).waitFor();
    await rowOf(page, "Old export").getByText("expired", { exact: true }).first().waitFor();
    await shot(page, "clients");

    // Add a client.
    await page.getByRole("link", { name: "Add client" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Payroll sync");
    await page.getByRole("checkbox", { name: "payroll.read" }).check();
    await page.getByLabel("Additional roles").fill("auditor");
    await page.getByLabel("Token lifetime (minutes)").fill("10");
    await page.getByLabel("Description", { exact: true }).fill("Production server");
    await shot(page, "add-client");
    await page.getByRole("button", { name: "Add client" }).click();
    await page.getByRole("heading", { name: "Client added" }).waitFor();
    await page.getByText("this is the only time it is shown").waitFor();
    const clientId = await page.getByLabel("Client ID", { exact: true }).inputValue();
    const first = await page.getByLabel("Client secret", { exact: true }).inputValue();
    assert.equal(clientId, "payroll-sync");
    await shot(page, "client-added");
    await assertNothingStored(page, context, [acme.secret, first]);

    // The secret read off the page gets a token with what the form chose (once the gateway's
    // watcher has read the changed file).
    await eventually("the new client gets a token", async () => (await tokenStatus("acme", clientId, first)) === 200);
    const issued = await token("acme", clientId, first);
    assert.equal(issued.status, 200, JSON.stringify(issued.body));
    const firstClaims = claims(issued.body.access_token);
    assert.deepEqual(firstClaims.roles, ["tenant-member", "auditor"]);
    assert.equal(firstClaims.scope, "payroll.read");
    assert.equal(firstClaims.exp - firstClaims.iat, 600);
    assert.equal(await protectedStatus("/acme/api/payroll", issued.body.access_token), 200);

    // The client page.
    await page.getByRole("link", { name: "Done" }).click();
    await page.getByRole("heading", { name: "Payroll sync" }).waitFor();
    const details = page.getByRole("definition");
    assert.deepEqual(await page.getByRole("term").allInnerTexts(), ["Client ID", "Name", "Scopes", "Roles", "Token lifetime", "Expires", "State", "Tokens refused if issued before"]);
    assert.deepEqual((await details.allInnerTexts()).slice(0, 6), ["payroll-sync", "Payroll sync", "payroll.read", "tenant-member, auditor", "10 min", "never"]);
    await shot(page, "client");

    // Edit: a page made stale by another administrator's change says so and shows theirs.
    await page.getByRole("button", { name: "Edit" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Payroll sync EU");
    const other = (await token("acme", acme.client, acme.secret)).body.access_token;
    const renamed = await fetch(`${cfg.base}/manage/v1/orgs/acme/clients/payroll-sync`, {
      method: "PATCH",
      headers: { Authorization: `Bearer ${other}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "Payroll sync (renamed)" }),
    });
    assert.equal(renamed.status, 200);
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("alert").getByText("Someone else changed this client").waitFor();
    await page.getByRole("heading", { name: "Payroll sync (renamed)", exact: true }).waitFor();
    await page.getByRole("button", { name: "Edit" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Payroll sync");
    await page.getByLabel("Token lifetime (minutes)").fill("15");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("heading", { name: "Payroll sync", exact: true }).waitFor();
    await page.getByRole("definition").filter({ hasText: "15 min" }).waitFor();
    // A lifetime outside the bounds is explained before anything is sent.
    await page.getByRole("button", { name: "Edit" }).click();
    await page.getByLabel("Token lifetime (minutes)").fill("100000");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("alert").getByText("The token lifetime must be a whole number of minutes from 1 to 120").waitFor();
    await page.getByRole("button", { name: "Cancel" }).click();

    // Add a second secret and use it.
    await page.getByRole("link", { name: /^Secrets/ }).click();
    await page.getByRole("button", { name: "Add secret" }).click();
    const addDialog = page.getByRole("dialog", { name: "Add secret" });
    await addDialog.getByLabel("Description").fill("Rotation 2027");
    await addDialog.getByRole("button", { name: "Add secret" }).click();
    const second = await readSecretDialog(page, "Secret added");
    await shot(page, "secret-added");
    await second.dialog.getByRole("button", { name: "I have copied it" }).click();
    await rowOf(page, "Rotation 2027").waitFor();
    await eventually("the second secret works", async () => (await tokenStatus("acme", clientId, second.secret)) === 200);
    await shot(page, "secrets");

    // Remove the first: refused from then on.
    await rowOf(page, "Production server").getByRole("button", { name: "Remove" }).click();
    await confirmDialog(page, "Remove secret?", "Remove secret");
    await rowOf(page, "Production server").waitFor({ state: "detached" });
    await eventually("the removed secret is refused", async () => (await tokenStatus("acme", clientId, first)) === 401);
    assert.equal(await tokenStatus("acme", clientId, second.secret), 200);

    // The last valid secret (beside expired ones) needs a second confirmation; cancelling
    // keeps it, confirming removes it.
    await page.goto(`${CONSOLE}#/orgs/acme/clients/rotating/secrets`);
    await signIn(page, acme, false);
    await rowOf(page, "current").getByRole("button", { name: "Remove" }).click();
    await confirmDialog(page, "Remove secret?", "Remove secret");
    await confirmDialog(page, "Remove the last valid secret?", "Cancel");
    await rowOf(page, "current").waitFor();
    await rowOf(page, "current").getByRole("button", { name: "Remove" }).click();
    await confirmDialog(page, "Remove secret?", "Remove secret");
    await confirmDialog(page, "Remove the last valid secret?", "Remove it anyway");
    await rowOf(page, "current").waitFor({ state: "detached" });
    await rowOf(page, "lapsed").waitFor();
    await eventually("the removed last secret is refused", async () => (await tokenStatus("acme", "rotating", acme.secret)) === 401);
    await page.evaluate(() => {
      location.hash = "#/orgs/acme/clients/payroll-sync/secrets";
    });
    await rowOf(page, "Rotation 2027").waitFor();

    // Regenerate: one new secret, the old ones refused.
    await page.getByRole("button", { name: "Regenerate secret" }).click();
    const regenerate = page.getByRole("dialog", { name: "Regenerate secret?" });
    await regenerate.getByText("stops working at once").waitFor();
    await regenerate.getByRole("button", { name: "Regenerate secret" }).click();
    const third = await readSecretDialog(page, "New secret");
    await third.dialog.getByRole("button", { name: "I have copied it" }).click();
    // The only secret cannot be removed; the page says what to do instead.
    await page.getByText("to replace its only one, use Regenerate secret").waitFor();
    assert.ok(await rowOf(page, third.id).getByRole("button", { name: "Remove" }).isDisabled());
    await eventually("the regenerated secret works", async () => (await tokenStatus("acme", clientId, third.secret)) === 200);
    await eventually("the replaced secret is refused", async () => (await tokenStatus("acme", clientId, second.secret)) === 401);
    await assertNothingStored(page, context, [acme.secret, first, second.secret, third.secret]);

    // Roles: the default one is fixed; an added one is in the next token.
    await page.getByRole("link", { name: "Roles" }).click();
    const defaultRow = rowOf(page, "tenant-member");
    await defaultRow.getByText("default").waitFor();
    assert.equal(await defaultRow.getByRole("button").count(), 0, "a default role can be removed");
    await page.getByLabel("Add roles").fill("exporter");
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await rowOf(page, "exporter").waitFor();
    await shot(page, "roles");
    await eventually("the new role is in the next token", async () => {
      const next = await token("acme", clientId, third.secret);
      return next.status === 200 && claims(next.body.access_token).roles.includes("exporter");
    });
    await rowOf(page, "auditor").getByRole("button", { name: "Remove" }).click();
    await rowOf(page, "auditor").waitFor({ state: "detached" });

    // Disable: the token it holds is refused at once on the protected route; enable again.
    const held = (await token("acme", clientId, third.secret)).body.access_token;
    assert.equal(await protectedStatus("/acme/api/payroll", held), 200);
    await page.getByRole("button", { name: "Disable" }).click();
    await page.getByRole("heading", { name: "Payroll sync" }).locator("..").getByText("disabled").waitFor();
    await eventually("a disabled client's token is refused", async () => (await protectedStatus("/acme/api/payroll", held)) === 401);
    await page.getByRole("button", { name: "Enable" }).click();
    await eventually("an enabled client's token works again", async () => (await protectedStatus("/acme/api/payroll", held)) === 200);

    // Revoke all tokens: the held one is refused, a new one works.
    // Dialogs work from the keyboard: focus starts inside (on Cancel, for a dangerous one),
    // Escape cancels, Shift+Tab and Enter confirm.
    const revoke = page.getByRole("dialog", { name: "Revoke all tokens?" });
    await page.getByRole("button", { name: "Revoke all tokens" }).click();
    await revoke.waitFor();
    assert.equal(await revoke.evaluate((d) => document.activeElement.textContent && d.contains(document.activeElement) && document.activeElement.textContent), "Cancel");
    await page.keyboard.press("Escape");
    await revoke.waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Revoke all tokens" }).click();
    await revoke.waitFor();
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.press("Enter");
    await revoke.waitFor({ state: "detached" });
    await eventually("a revoked token is refused", async () => (await protectedStatus("/acme/api/payroll", held)) === 401);
    await new Promise((r) => setTimeout(r, 1100)); // a new token's iat is past the cut-off second
    const fresh = await token("acme", clientId, third.secret);
    assert.equal(await protectedStatus("/acme/api/payroll", fresh.body.access_token), 200);

    // Delete, typing the id to confirm: gone from the list, its secret refused.
    await page.getByRole("button", { name: "Delete" }).click();
    const del = page.getByRole("dialog", { name: "Delete Payroll sync?" });
    const confirm = del.getByRole("button", { name: "Delete client" });
    assert.ok(await confirm.isDisabled(), "delete is possible without typing the id");
    await del.getByRole("textbox").fill("payroll-syn");
    assert.ok(await confirm.isDisabled(), "delete accepts a wrong id");
    await del.getByRole("textbox").fill("payroll-sync");
    await confirm.click();
    await page.getByRole("heading", { name: /^API clients of / }).waitFor();
    await rowOf(page, "Existing app").waitFor();
    assert.equal(await rowOf(page, "payroll-sync").count(), 0);
    await eventually("a deleted client's secret is refused", async () => (await tokenStatus("acme", clientId, third.secret)) === 401);
    await assertNothingStored(page, context, [acme.secret, first, second.secret, third.secret]);
    return { client_id: clientId, secret: third.secret };
  },

  /** Wrong credentials are explained; an organisation's administrator (signed in with a
   * pasted bearer token) sees only their own organisation. */
  async isolation({ page, context }) {
    await page.goto(`${CONSOLE}?org=globex`);
    await page.getByLabel("Client ID", { exact: true }).fill("admin");
    await page.getByLabel("Client secret", { exact: true }).fill("wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").getByText("The client ID or secret is wrong").waitFor();
    await page.getByLabel("Organisation").fill("nosuch");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").getByText('There is no organisation "nosuch" here').waitFor();

    await page.getByText("Use a bearer token instead").click();
    await page.getByLabel("Bearer token").fill(cfg.globex_token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "API clients of Globex" }).waitFor();
    await rowOf(page, "Globex app").waitFor();
    assert.equal(await page.getByRole("combobox", { name: "Organisation" }).count(), 0, "an org admin sees the picker");
    assert.equal(await page.getByRole("link", { name: "Organisations" }).count(), 0);

    // Acme's clients, asked for by a link: not found, nothing of Acme's shown. (Loading a
    // page signs out: the token lived in the old page's memory only.)
    await page.goto(`${CONSOLE}#/orgs/acme/clients`);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.getByText("Use a bearer token instead").click();
    await page.getByLabel("Bearer token").fill(cfg.globex_token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").getByText("Not found").waitFor();
    const text = await page.locator("main").innerText();
    assert.ok(!text.includes("Existing app") && !text.includes("Acme"), text);
    await page.evaluate(() => {
      location.hash = "#/orgs/acme/clients/app";
    });
    await page.getByRole("alert").getByText("Not found").waitFor();
    await assertNothingStored(page, context, [cfg.globex_token]);
    return {};
  },

  /** An operator picks any organisation. */
  async operator({ page }) {
    await signIn(page, cfg.operator);
    const picker = page.getByRole("combobox", { name: "Organisation" });
    const options = await picker.locator("option").allInnerTexts();
    assert.deepEqual(options, ["Acme Corp (acme)", "Globex (globex)", "Vendor (vendor)"]);
    await page.getByRole("link", { name: "Organisations" }).click();
    await page.getByRole("heading", { name: "Organisations" }).waitFor();
    await rowOf(page, "Globex").waitFor();
    await shot(page, "organisations");
    await picker.selectOption("globex");
    await page.getByRole("heading", { name: "API clients of Globex" }).waitFor();
    await rowOf(page, "Globex app").waitFor();
    await rowOf(page, "Globex app").getByRole("link").click();
    await page.getByRole("heading", { name: "Globex app" }).waitFor();
    return {};
  },

  /** A client named like markup is shown as text; the page runs no injected script. */
  async xss({ page, seen }) {
    await signIn(page, cfg.admin);
    const name = cfg.hostile_name;
    await rowOf(page, name).waitFor();
    assert.equal(await page.locator("main img").count(), 0, "the name became an element");
    await rowOf(page, name).getByRole("link", { name }).click();
    await page.getByRole("heading", { name }).waitFor();
    assert.equal(await page.locator("main img").count(), 0);
    // An inline script put into the page the way markup would: blocked.
    const ran = await page.evaluate(() => {
      const holder = document.createElement("div");
      document.body.append(holder);
      try {
        holder.innerHTML = "<img src=x onerror=\"window.__pwned = 1\">";
      } catch {
        /* Trusted Types refuse the string */
      }
      const script = document.createElement("script");
      script.append(document.createTextNode("window.__pwned = 2"));
      document.body.append(script);
      return new Promise((resolve) => setTimeout(() => resolve(window.__pwned ?? null), 300));
    });
    assert.equal(ran, null, "an injected script ran");
    assert.equal(await page.evaluate(() => window.__xss ?? null), null, "the hostile name ran");
    assert.ok(seen.violations.length > 0, "no CSP violation was reported");
    return { violations: seen.violations };
  },

  /** Host mode: the page at the organisation's own host asks for no organisation. */
  async host_mode({ page }) {
    await page.goto(`${cfg.host_base}/manage/v1/console/`);
    await page.getByLabel("Client ID", { exact: true }).waitFor();
    assert.equal(await page.getByLabel("Organisation").count(), 0, "host mode asks for the organisation");
    await page.getByLabel("Client ID", { exact: true }).fill(cfg.admin.client);
    await page.getByLabel("Client secret", { exact: true }).fill(cfg.admin.secret);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "API clients of Acme Corp" }).waitFor();
    await rowOf(page, "Existing app").waitFor();
    return {};
  },

  /** The session ends with the token, with a message. */
  async expiry({ page, context }) {
    await signIn(page, cfg.short);
    // A dialog left open goes with the session.
    await page.evaluate(() => {
      location.hash = "#/orgs/acme/clients/app";
    });
    await page.getByRole("button", { name: "Delete" }).click();
    await page.getByRole("dialog").waitFor();
    await page.getByRole("heading", { name: "Sign in" }).waitFor({ timeout: 15_000 });
    await page.getByText("Your session expired at").waitFor();
    assert.equal(await page.getByRole("dialog").count(), 0, "a dialog outlived the session");
    assert.equal(new URL(page.url()).hash, "");
    await assertNothingStored(page, context, [cfg.short.secret]);
    return {};
  },
};

// ---------------------------------------------------------------------------------------------

const run = scenarios[scenario];
if (!run) {
  console.error(`no scenario ${scenario}; have ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
const session = await launch();
let code = 0;
try {
  const result = await run(session);
  assert.deepEqual(session.seen.errors, [], "the page threw");
  console.log(JSON.stringify(result));
} catch (error) {
  console.error(`${scenario}: ${error.stack || error}`);
  console.error(`page errors: ${JSON.stringify(session.seen.errors)}`);
  try {
    console.error(`page text:\n${await session.page.locator("body").innerText()}`);
  } catch {
    /* the page is gone */
  }
  code = 1;
} finally {
  await session.browser.close();
}
process.exit(code);
